"""The requantization unit: int32 accumulator values rescaled into the next operation's
operands, on chip (no host round trip between the steps of a chain).

Per lane, for a command's ``mult`` (unsigned) and ``shift``::

    v      = round_shift_right(x * mult, min(shift, V + 1))     V = width of x * mult
    y_op   = saturate(v, operand_bits)                           an array operand (int8)
    y_wide = saturate(v, wide_bits)                              an accumulator element
    slice  = (x >> shift) mod 2**(operand_bits - 1)              an exact 7-bit slice of x >= 0

and a reduction over the lanes and the cycles since ``first`` in which ``fold`` is 1 (a cycle
with ``fold = 0`` leaves it; the unit streams other commands' rows meanwhile): ``absmax`` (of
``|x|``) and
``pow2 = max(lod(absmax) - (operand_bits - 1), 0)``, the power-of-two shift that brings the
largest magnitude into the operand range. Capping the shift at ``V + 1`` is exact: at that
shift every value of ``V`` bits already rounds to 0. These are the steps
:mod:`golden.linear_attention_chain` (``VK`` to int8, ``KS`` into 7-bit slices),
:mod:`golden.attention_fixed` (scores to logits) and :mod:`golden.svdquant_fixed` (the
low-rank intermediate to int8) define.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..primitive import PrimitiveGraph
from .build import GraphBuilder

__all__ = ["RequantShape", "requant_graph"]

_X_BITS = 32
_SHIFT_BITS = 6


@dataclass(frozen=True)
class RequantShape:
    """What one requantization datapath is built for (see the module docstring)."""

    lanes: int = 16
    mult_bits: int = 16
    operand_bits: int = 8
    wide_bits: int = 32             #: the accumulator's elements (``wide`` saturates to them)

    def __post_init__(self) -> None:
        for name, lo, hi in (("lanes", 1, 256), ("mult_bits", 1, 32), ("operand_bits", 2, 16),
                             ("wide_bits", 2, 32)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")


def requant_graph(shape: RequantShape) -> PrimitiveGraph:
    """Inputs ``mult``, ``shift`` (6 bits), ``first``, ``fold`` and per lane ``x<l>`` (signed 32);
    outputs per lane ``op<l>`` (signed ``operand_bits``), ``wide<l>`` (signed ``wide_bits``),
    ``slice<l>`` (``operand_bits - 1`` bits), and ``absmax``, ``pow2``."""
    b = GraphBuilder()
    mult = b.input("mult", shape.mult_bits)
    shift = b.input("shift", _SHIFT_BITS)
    first = b.input("first", 1)
    fold = b.input("fold", 1)
    vw = _X_BITS + shape.mult_bits + 1
    capped = b.op("min", _SHIFT_BITS, shift, b.const(vw + 1))
    mags = []
    for lane in range(shape.lanes):
        x = b.input(f"x{lane}", _X_BITS, signed=True)
        v = b.round_shift_right_var(b.op("mul", vw, x, mult, signed=True), capped, vw)
        b.output(f"op{lane}", b.saturate(v, shape.operand_bits))
        b.output(f"wide{lane}", b.saturate(v, shape.wide_bits))
        low = b.op("shr_var", _X_BITS, x, shift, signed=True)
        b.output(f"slice{lane}", b.op("buf", shape.operand_bits - 1, low))
        mags.append(b.abs(x))
    folded = b.op("mux", _X_BITS, fold, b.tree("max", mags, _X_BITS), b.const(0, _X_BITS, False))
    reg = b.running("max", folded, first, 0, _X_BITS)
    length = b.op("lod", 6, reg)
    excess = b.op("sub", 7, length, b.const(shape.operand_bits - 1), signed=True)
    b.output("absmax", reg)
    b.output("pow2", b.op("max", 6, excess, b.const(0, 1, False)))
    return b.graph
