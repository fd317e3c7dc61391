"""Canonical form of a :class:`~mapping.ir.ModelGraph`: what it computes, not how it is laid out.

A graph's canonical form is the multiset of its operators' fields, names left out, each counted
by the executions of one graph run (the ``repeat`` of its stage). Two graphs are
:func:`equivalent` when their canonical forms are equal: a flat graph imported from torch equals
a hand-written graph whose identical layers are folded into one repeated stage, whatever the
operator and stage names, the stage order or the weight sharing. Two spellings of one
computation are identified:

* ``Conv2d.padding``: ``-1`` ("``kernel // 2``") and the explicit ``kernel // 2``;
* ``Attention.causal`` of a single query without window: the query is the last position, so a
  causal mask lets it see every key, exactly as no mask does.

Pure Python (no torch): graphs from any source compare here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from typing import Any

from .ir import Attention, Conv2d, Format, ModelGraph, Op

__all__ = ["canonical_op", "canonical_ops", "describe_difference", "equivalent", "op_difference"]

CanonicalOp = tuple[str, tuple[tuple[str, Any], ...]]
"""``(kind, ((field, value), ...))`` of one operator, its name left out, formats by name."""


def canonical_op(op: Op) -> CanonicalOp:
    """The operator's kind and fields without its name (formats by name, the two spellings of
    one computation identified, see the module docstring)."""
    items: list[tuple[str, Any]] = []
    for f in fields(op):  # type: ignore[arg-type]
        if f.name == "name":
            continue
        value = getattr(op, f.name)
        if isinstance(value, Format):
            value = value.name
        elif isinstance(op, Conv2d) and f.name == "padding":
            value = op.pad
        elif isinstance(op, Attention) and f.name == "causal":
            value = value or (op.q_tokens == 1 and op.window is None)
        items.append((f.name, value))
    return op.kind, tuple(items)


def canonical_ops(graph: ModelGraph) -> Counter[CanonicalOp]:
    """Canonical operator -> executions per graph run (summed over stages and repeats)."""
    out: Counter[CanonicalOp] = Counter()
    for op, repeat in graph:
        out[canonical_op(op)] += repeat
    return out


def equivalent(a: ModelGraph, b: ModelGraph) -> bool:
    """Whether ``a`` and ``b`` run the same operators the same number of times."""
    return canonical_ops(a) == canonical_ops(b)


def op_difference(a: ModelGraph, b: ModelGraph) -> tuple[Counter[CanonicalOp],
                                                         Counter[CanonicalOp]]:
    """``(only in a, only in b)``: executions of each canonical operator one graph has more of."""
    ca, cb = canonical_ops(a), canonical_ops(b)
    return ca - cb, cb - ca


def describe_difference(a: ModelGraph, b: ModelGraph, limit: int = 20) -> str:
    """A readable account of :func:`op_difference` (empty when the graphs are equivalent): one
    line per differing operator, ``limit`` lines at most per side."""
    lines: list[str] = []
    for graph, extra in zip((a, b), op_difference(a, b), strict=True):
        for (kind, items), count in sorted(extra.items(), key=repr)[:limit]:
            desc = ", ".join(f"{k}={v!r}" for k, v in items)
            lines.append(f"only in {graph.name!r}: {count} x {kind}({desc})")
    return "\n".join(lines)
