"""Constraints of a design-space sweep: small boolean expressions over the point's numbers,
parsed with :mod:`ast` and evaluated by a walker of their own (never ``eval``).

A constraint is a comparison (``pes <= 1024``, ``scratchpad_kib >= 4 * accumulator_kib``,
chains such as ``64 <= pes <= 1024``), or such comparisons joined by ``and`` / ``or`` /
``not``. Operands: the variable names of :data:`VARIABLES`, integer and float literals, ``+``,
``-``, ``*``, ``/`` and unary ``-``. Anything else (calls, attributes, strings, ``**``,
subscripts, a bare number or name) is a :class:`ConstraintError` when the sweep file is read,
as is a name outside the variables, so a bad constraint fails before any point is computed.

Layer: flows (plain Python).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

from hw.front.spec_model import close_hint

__all__ = ["VARIABLES", "Constraint", "ConstraintError", "parse_constraint"]

#: the names a constraint may use: the numeric axes (their value at the point, else the base
#: architecture's) and what follows from the array (rows, cols, pes = rows x cols);
#: ``unit_lanes`` is 0 on an architecture without laned units (or with mixed lanes).
VARIABLES = ("rows", "cols", "pes", "scratchpad_kib", "accumulator_kib",
             "dram_bytes_per_cycle", "unit_lanes")

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}


class ConstraintError(ValueError):
    """A constraint that does not parse, uses something not allowed, or names an unknown
    variable; the message quotes the constraint."""


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: its ``text`` and its checked expression tree."""

    text: str
    tree: ast.expr = field(compare=False, repr=False)

    def __call__(self, values: Mapping[str, float]) -> bool:
        """Whether the point with variable ``values`` satisfies the constraint
        (``ConstraintError`` for a division by zero)."""
        try:
            return bool(_value(self.tree, values))
        except ZeroDivisionError:
            raise ConstraintError(f"constraint {self.text!r}: division by zero at "
                                  f"{dict(values)}") from None


def parse_constraint(text: object) -> Constraint:
    """``text`` parsed and checked (see the module docstring); ``ConstraintError`` naming the
    constraint and the offending part otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ConstraintError(f"a constraint must be an expression like 'pes <= 1024', got "
                              f"{text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConstraintError(f"constraint {text!r} does not parse: {exc.msg}") from None
    _check_bool(tree, text)
    return Constraint(text.strip(), tree)


def _check_bool(node: ast.expr, text: str) -> None:
    """``node`` is a comparison, or comparisons under and / or / not."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_bool(value, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_bool(node.operand, text)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ConstraintError(f"constraint {text!r}: comparison "
                                      f"{type(op).__name__} is not allowed (use < <= > >= == "
                                      f"!=)")
        for operand in (node.left, *node.comparators):
            _check_number(operand, text)
    else:
        raise ConstraintError(f"constraint {text!r} must be a comparison such as "
                              f"'pes <= 1024' (or comparisons joined by and/or/not), got "
                              f"{ast.unparse(node)!r}")


def _check_number(node: ast.expr, text: str) -> None:
    """``node`` is arithmetic over known variables and numeric literals."""
    if isinstance(node, ast.Name):
        if node.id not in VARIABLES:
            raise ConstraintError(f"constraint {text!r}: unknown variable "
                                  f"{node.id!r}{close_hint(node.id, VARIABLES)} (variables: "
                                  f"{', '.join(VARIABLES)})")
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ConstraintError(f"constraint {text!r}: only numbers, got {node.value!r}")
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check_number(node.left, text)
        _check_number(node.right, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check_number(node.operand, text)
    else:
        raise ConstraintError(f"constraint {text!r}: {ast.unparse(node)!r} is not allowed "
                              f"(names, numbers, + - * /, comparisons, and/or/not only)")


def _value(node: ast.expr, values: Mapping[str, float]) -> float | bool:
    """The value of a checked tree (only the node kinds the checks let through)."""
    if isinstance(node, ast.BoolOp):
        results = (_value(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        inner = _value(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not inner
        return -inner if isinstance(node.op, ast.USub) else +inner
    if isinstance(node, ast.Compare):
        left = _value(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _value(comp, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_value(node.left, values), _value(node.right, values))
    if isinstance(node, ast.Name):
        return values[node.id]
    return node.value  # ast.Constant
