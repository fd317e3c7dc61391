"""The node kinds of a :class:`~hw.ir.primitive.PrimitiveGraph`: one table, one row per kind.

Each row of :data:`KIND_TABLE` holds a kind's default combinational delay (abstract units, a
multiplier is 1.0), its in-edge count and its semantics; :data:`DEFAULT_DELAY`, :data:`ARITY`,
:data:`KINDS` and the semantics table at the end of this docstring are derived from it.
:mod:`hw.ir.primitive` re-exports the three tables. Where each kind is *executed*: the Python
semantics in :mod:`hw.ir.graph_sim` (``evaluate``, ``_expression``), the RTL form in
:mod:`hw.rtl.graph_rtl` (``_operator``).

Semantics (executed by :func:`hw.ir.graph_sim.simulate_graph`, one evaluation per clock cycle).
Every value is a bit pattern of its node's ``width``. An edge carries the low ``edge.width``
bits of its source; the consumer reads that slice as a signed (sign-extended) integer when the
*source* node is ``signed``, else zero-extended. Every operator computes the exact integer
result of its operands and truncates it to its own ``width`` (two's-complement wrap). With
``a, b, c`` the operands on ports 0, 1, 2 (:data:`ARITY` gives the in-edge counts) and ``v`` the
node's ``value``::

"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

__all__ = ["ARITY", "DEFAULT_DELAY", "KINDS", "KIND_TABLE", "Kind", "clamp_bounds"]


@dataclass(frozen=True)
class Kind:
    """One node kind: default ``delay``, in-edge count ``arity`` (``(least, most)``, ``None``:
    no upper bound) and ``semantics``, its line of the table in the module docstring."""

    delay: float
    arity: tuple[int, int | None]
    semantics: str


KIND_TABLE: dict[str, Kind] = {
    "input": Kind(0.0, (0, 0), "(no in-edges) the environment's value this cycle"),
    "mem_read": Kind(0.5, (0, 0), "(no in-edges) the environment's value this cycle (a "
                     "mem_read's address logic lives outside the graph)"),
    "const": Kind(0.0, (0, 0), "v"),
    "register": Kind(0.0, (1, 1), "out(t + 1) = a(t),  out(0) = v"),
    "mul": Kind(1.0, (2, 2), "a * b"),
    "add": Kind(0.5, (1, None), "sum of all operands (one or more)"),
    "sub": Kind(0.5, (2, 2), "a - b"),
    "mux": Kind(0.25, (3, 3), "b if a != 0 else c  (sel, when_true, when_false; Amaranth's "
                "Mux)"),
    "shift": Kind(0.25, (1, 1), "a << v if v >= 0 else a >> -v  (arithmetic when a's source is "
                  "signed: the operand is already sign-extended)"),
    "compare": Kind(0.25, (2, 2), "1 if a < b else 0"),
    "relu": Kind(0.25, (1, 1), "max(a, 0)"),
    "max": Kind(0.25, (2, 2), "max(a, b)"),
    "min": Kind(0.25, (2, 2), "min(a, b)"),
    "clamp": Kind(0.25, (1, 1), "a saturated to v bits (1 <= v <= width): to [-2**(v-1), "
                  "2**(v-1) - 1] when the node is signed, else to [0, 2**v - 1]"),
    "shl_var": Kind(0.5, (2, 2), "a << max(b, 0)  (a shift by width or more gives 0)"),
    "shr_var": Kind(0.5, (2, 2), "a >> max(b, 0)  (floor, i.e. arithmetic when a's source is "
                    "signed: a shift past a's bits gives its sign fill, 0 or -1)"),
    "lod": Kind(0.5, (1, 1), "abs(a).bit_length()  (leading-one detect: the 1-based position "
                "of the highest set bit of |a|, 0 for 0)"),
    "rom": Kind(0.5, (1, 1), "table[a] if 0 <= a < len(table) else 0  (the node's table, "
                "non-empty, entries in either encoding of width bits)"),
    "recip": Kind(4.0, (1, 1), "(2**v + a // 2) // a if a > 0 else 0  (round(2**v / a), "
                  "ties up; 0 <= v <= 62)"),
    "buf": Kind(0.05, (1, 1), "a  (identity; fan-out trees)"),
    "output": Kind(0.0, (1, 1), "a, observed (a sink)"),
    "mem_write": Kind(0.5, (1, 1), "a, observed (a sink)"),
}

#: Combinational delay per node kind in abstract units (a multiplier is 1.0).
DEFAULT_DELAY: dict[str, float] = {name: k.delay for name, k in KIND_TABLE.items()}
KINDS: frozenset[str] = frozenset(KIND_TABLE)
#: In-edges per kind for simulation: ``(least, most)``, ``None``: no upper bound.
ARITY: dict[str, tuple[int, int | None]] = {name: k.arity for name, k in KIND_TABLE.items()}


def clamp_bounds(value: int, signed: bool) -> tuple[int, int]:
    """The range a ``clamp`` node of ``value`` bits saturates to (signed when the node is)."""
    if signed:
        return -(1 << (value - 1)), (1 << (value - 1)) - 1
    return 0, (1 << value) - 1


def _semantics_table() -> str:
    rows = []
    for name, kind in KIND_TABLE.items():
        rows.append(textwrap.fill(kind.semantics, width=96, initial_indent=f"    {name:<13} ",
                                  subsequent_indent=" " * 18))
    return "\n".join(rows) + (
        "\n\nA node with another number of in-edges than its kind's :data:`ARITY`, or ports "
        "other than\n``0 .. k-1``, is an error when simulating.\n\n"
        "Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).\n")


__doc__ = (__doc__ or "") + _semantics_table()
