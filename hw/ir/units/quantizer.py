"""The activation quantizer of the W4A4 layer, exactly :func:`golden.svdquant_ops.quantize_int4`
with ``scale_dtype="float32"``: per group of ``group`` consecutive elements of a row, one
float32 scale and a 4-bit code per element; and, with the run-time input ``wide``, the
symmetric ``code_bits``-bit codes of :func:`golden.svdquant_fixed.quantize_symmetric` (the
operand type's width: the low-rank branch's per-row ``Q_b``), one group then being a whole row.

A group is streamed twice, ``lanes`` float32 patterns ``x<l>`` per cycle over
``group / lanes`` cycles (a row's elements in wide mode), like the softmax unit's row:

* pass 1: ``absmax`` = the running max of ``|x|`` (a register restarted by ``first``; the
  magnitude of a finite float32 is its pattern with the sign bit cleared, and magnitudes
  order as those 31-bit integers). Pass 2 streams the same elements, so it holds;
* ``s = fl32(absmax / qmax)`` (:func:`~hw.ir.units.float32.float32_divide`; ``qmax`` = 7
  when ``signed``, else 15; ``2**(code_bits - 1) - 1`` when ``wide``), and ``s = 1.0`` when
  that is 0 (an all-zero group, or an ``absmax`` so small that the quotient underflows);
* pass 2, per lane: ``q = clamp(rint(fl32(x / s)), qmin, qmax)``: the correctly rounded
  float32 quotient first, then ``rint`` (ties to even) of that float32, so the double rounding
  is golden's. ``rint`` of ``v = sig * 2**(max(field, 1) - 150)`` is
  :func:`~hw.ir.units.float32.round_to_even` of ``sig`` by ``min(150 - max(field, 1), 25)``
  (a shift <= 0 means ``|v| >= 2**23``, which saturates anyway); the magnitude is capped at
  ``2**max(code_bits - 1, 4)``, signed, then clamped to ``-8..7`` (``signed``), ``0..15``,
  or ``-2**(code_bits - 1) .. 2**(code_bits - 1) - 1`` (``wide``).

``signed`` and ``wide`` are run-time inputs (1 bit each; ``wide`` overrides ``signed``). The
codes ``q<l>`` are ``code_bits``-bit two's complement patterns (the 4-bit codes sign-extended
when ``signed``, plain 0..15 else; -8, or ``-2**(code_bits - 1)`` when ``wide``, arises only
from subnormal scales, as golden says); ``scale`` is the float32 pattern of ``s`` (valid in
pass 2, from the register's complete ``absmax``).

Out of contract (golden rejects these inputs): a negative ``x`` with ``signed = 0`` gets the
code 0 (the clamp to ``qmin``; its magnitude still counts towards ``absmax``, as in the signed
mode); an infinity or NaN ``x`` is read as the finite number its exponent field 255 would
encode (:mod:`~hw.ir.units.float32`), so ``absmax``, the scale and the codes are defined but
meaningless. ``-0.0`` is 0.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..primitive import PrimitiveGraph
from .build import GraphBuilder
from .float32 import (
    float32_divide,
    float32_divide_parts,
    float32_fields,
    float32_unpack,
    round_to_even,
)

__all__ = ["QuantizerShape", "quantizer_graph"]

_ONE = 0x3F800000                           # 1.0
_QMAX = {True: 0x40E00000, False: 0x41700000}   # 7.0 (signed), 15.0 (unsigned)


def _float32_bits(value: int) -> int:
    """The float32 pattern of a small non-negative integer (exact below 2**24)."""
    return 0 if value == 0 else ((value.bit_length() + 126) << 23) | \
        ((value << (24 - value.bit_length())) & 0x7FFFFF)


@dataclass(frozen=True)
class QuantizerShape:
    """What one quantizer datapath is built for: ``lanes`` elements per cycle, groups of
    ``group`` elements (a multiple of ``lanes``: a cycle never straddles two groups), the
    ``wide`` mode's ``code_bits``-bit codes (the operand type's bits; also the width of every
    code output)."""

    lanes: int = 16
    group: int = 64
    code_bits: int = 8

    def __post_init__(self) -> None:
        for name, lo, hi in (("lanes", 1, 256), ("group", 1, 8192), ("code_bits", 4, 16)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
        if self.group % self.lanes:
            raise ValueError(f"group={self.group} must be a multiple of lanes={self.lanes}")


def _code(b: GraphBuilder, q: str, signed: str, wide: str, bits: int) -> str:
    """The ``bits``-bit code of the float32 quotient pattern ``q`` (module docstring)."""
    negative, field_e, sig = float32_fields(b, q)
    right = b.op("sub", 9, b.const(150), b.op("max", 8, field_e, b.const(1)), signed=True)
    shift = b.op("min", 5, b.op("max", 9, right, b.const(0, 1, False), signed=True),
                 b.const(25))
    cap = 1 << max(bits - 1, 4)
    mag = b.op("min", cap.bit_length(), round_to_even(b, sig, shift, 25), b.const(cap))
    width = cap.bit_length() + 1
    value = b.op("mux", width, negative, b.op("sub", width, b.const(0), mag, signed=True),
                 mag, signed=True)
    narrow = b.op("mux", bits, signed, b.op("clamp", 4, value, signed=True, value=4),
                  b.op("clamp", 4, value, value=4), signed=True)
    return b.op("mux", bits, wide, b.op("clamp", bits, value, signed=True, value=bits), narrow,
                signed=True)


def quantizer_graph(shape: QuantizerShape) -> PrimitiveGraph:
    """Inputs ``first``, ``signed``, ``wide`` (1 bit each) and per lane ``x<l>`` (float32
    pattern); outputs per lane ``q<l>`` (``code_bits``-bit code), ``absmax`` (31-bit
    magnitude pattern of the running max since ``first``) and ``scale`` (float32 pattern of
    ``s``)."""
    b = GraphBuilder()
    first, signed, wide = b.input("first", 1), b.input("signed", 1), b.input("wide", 1)
    xs = [b.input(f"x{lane}", 32) for lane in range(shape.lanes)]
    mags = [b.op("buf", 31, x) for x in xs]         # |x|: the sign bit cleared
    absmax = b.running("max", b.tree("max", mags, 31), first, 0, 31)
    qmax = b.op("mux", 32, wide, b.const(_float32_bits((1 << (shape.code_bits - 1)) - 1)),
                b.op("mux", 32, signed, b.const(_QMAX[True]), b.const(_QMAX[False])))
    s = float32_divide(b, absmax, qmax)
    scale = b.op("mux", 32, b.op("compare", 1, s, b.const(1)), b.const(_ONE), s)
    den = float32_unpack(b, scale)
    for lane, x in enumerate(xs):
        quotient = float32_divide_parts(b, float32_unpack(b, x), den)
        b.output(f"q{lane}", _code(b, quotient, signed, wide, shape.code_bits))
    b.output("absmax", absmax)
    b.output("scale", scale)
    return b.graph
