"""The group-dequantization unit of the W4A4 layer, exactly :mod:`golden.group_dequant`:
scale products encoded as mantissa and exponent, terms aligned to the largest exponent,
integer accumulation, one float32 rounding at the end.

Per lane (one output element ``(m, n)``), streamed once per group ``g`` in two passes:

* **scale product** of the two float32 scales ``sx[m, g]`` and ``sw[n, g]`` (bit patterns,
  >= 0): the exact integer product of the significands, normalized by a leading-one detect and
  rounded to ``mant_bits`` with ties to even (``mant``, ``exp``; ``mant = 0`` for a zero
  product), :func:`golden.group_dequant.encode_scale_products`;
* the row's ``offset`` added to ``exp`` (SVDQuant's low-rank term: its shift ``s_m``); with
  ``zero_dead`` a term whose dot is 0 is dead like one whose product is 0;
* pass 1: ``emax`` = the largest ``exp`` of a live group (a register, restarted by ``first``;
  pass 2 streams the same groups, so it holds);
* pass 2: ``term = round_shift_right((dot * mant) << guard, min(emax - exp, term_bits + 1))``,
  ``acc += term`` (restarted by ``acc_first``, enabled by ``acc_en``);
* ``y = fl32(acc * 2**(emax - guard))``: :func:`float32_graph` (round to nearest even,
  subnormals, overflow to infinity) as IEEE-754 bits.

With ``external_state`` the two running registers are ports instead: ``emax_in<l>`` and
``acc_in<l>`` give an output's state (what the register would hold), ``emax_next<l> =
max(emax_in, exp of a live term)`` and ``acc_next<l> = acc_in + term`` the state after the
term; the accelerator's unit keeps the state of many output rows in a memory and streams the
rows term by term (:mod:`hw.rtl.accel_dequant`).

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from golden.group_dequant import GroupDequantSpec

from ..primitive import PrimitiveGraph
from .build import GraphBuilder
from .float32 import float32_graph, round_to_even

__all__ = ["DequantShape", "dequant_graph"]

_EXP_BITS = 12          # signed exponents of scale products: -330 .. 256
_SIG = 24               # float32 significand with its hidden bit
_OFFSET_BITS = 8        # a row's exponent offset (a power-of-two requantization shift)


@dataclass(frozen=True)
class DequantShape:
    """What one group-dequantization datapath is built for (see the module docstring)."""

    lanes: int = 16
    spec: GroupDequantSpec = field(default_factory=GroupDequantSpec)
    external_state: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or \
                not 1 <= self.lanes <= 256:
            raise ValueError(f"lanes={self.lanes!r} must be an int in 1..256")


def _unpack(b: GraphBuilder, bits: str) -> tuple[str, str]:
    """Significand (hidden bit included, 0 for subnormals) and the exponent of its LSB of a
    non-negative float32 pattern ``bits``."""
    field_e = b.op("shift", 8, bits, value=-23)
    normal = b.op("compare", 1, b.const(0), field_e)
    frac = b.op("buf", 23, bits)
    sig = b.op("add", _SIG, frac, b.op("shift", _SIG, normal, value=23))
    # LSB exponent: e - 150 for normals, 1 - 150 for subnormals (field 0).
    exp = b.op("sub", _EXP_BITS, b.op("max", 8, field_e, b.const(1)), b.const(150),
               signed=True)
    return sig, exp


def _scale_product(b: GraphBuilder, sx: str, sw: str, mb: int) -> tuple[str, str]:
    """``(mant, exp)`` of the product of two float32 scales (see the module docstring)."""
    sig_x, exp_x = _unpack(b, sx)
    sig_w, exp_w = _unpack(b, sw)
    prod = b.op("mul", 2 * _SIG, sig_x, sig_w)
    length = b.op("lod", 6, prod)
    excess = b.op("sub", 8, length, b.const(mb), signed=True)
    down = b.op("max", 6, excess, b.const(0, 1, False))
    up = b.op("max", 6, b.op("sub", 8, b.const(0), excess, signed=True), b.const(0, 1, False))
    rounded = round_to_even(b, prod, down, mb + 1)
    mant0 = b.op("shl_var", mb + 1, rounded, up)
    carry = b.op("shift", 1, mant0, value=-mb)
    mant = b.op("shr_var", mb, mant0, carry)
    exp = b.op("add", _EXP_BITS, exp_x, exp_w, excess, carry, signed=True)
    live = b.op("compare", 1, b.const(0), mant)
    return mant, b.op("mux", _EXP_BITS, live, exp, b.const(0, 1, False), signed=True)


def _live(b: GraphBuilder, mant: str, dot: str, zero_dead: str) -> str:
    """A term counts when its scale product is not 0 and, with ``zero_dead``, its dot is not
    0 either (SVDQuant's low-rank term: a zero branch must not move the shared exponent)."""
    nonzero = b.op("compare", 1, b.const(0), mant)
    is_zero = b.op("sub", 1, b.const(1), b.op("add", 2, b.op("compare", 1, dot, b.const(0)),
                                               b.op("compare", 1, b.const(0), dot)))
    return b.op("mul", 1, nonzero, b.op("sub", 1, b.const(1), b.op("mul", 1, zero_dead,
                                                                      is_zero)))


def dequant_graph(shape: DequantShape) -> PrimitiveGraph:
    """Inputs ``first``, ``acc_first``, ``acc_en``, ``zero_dead`` (1 bit each), ``offset``
    (signed, the row's exponent offset: SVDQuant's branch shift ``s_m``, else 0) and per lane
    ``sx<l>``, ``sw<l>`` (float32 patterns), ``dot<l>`` (signed ``dot_bits``); outputs per
    lane ``mant<l>``, ``exp<l>`` (offset included), ``emax<l>``, ``acc<l>`` and ``y<l>``
    (float32 bits of ``acc * 2**(emax - guard)``): the ``dequant`` commands of
    :mod:`hw.front.isa_units`."""
    s = shape.spec
    b = GraphBuilder()
    external = shape.external_state
    controls = ("acc_en", "zero_dead") if external else \
        ("first", "acc_first", "acc_en", "zero_dead")
    inputs = dict(zip(controls, (b.input(n, 1) for n in controls), strict=True))
    acc_en, zero_dead = inputs["acc_en"], inputs["zero_dead"]
    offset = b.input("offset", _OFFSET_BITS, signed=True)
    least = -(1 << (_EXP_BITS - 1))
    for lane in range(shape.lanes):
        mant, exp = _scale_product(b, b.input(f"sx{lane}", 32), b.input(f"sw{lane}", 32),
                                   s.mant_bits)
        exp = b.op("add", _EXP_BITS, exp, offset, signed=True)
        dot = b.input(f"dot{lane}", s.dot_bits, signed=True)
        live = _live(b, mant, dot, zero_dead)
        cand = b.op("mux", _EXP_BITS, live, exp, b.const(least, _EXP_BITS, True), signed=True)
        if external:
            emax = b.input(f"emax_in{lane}", _EXP_BITS, signed=True)
            b.output(f"emax_next{lane}", b.op("max", _EXP_BITS, emax, cand, signed=True))
        else:
            emax = b.running("max", cand, inputs["first"], least, _EXP_BITS, signed=True)
        gap = b.op("sub", _EXP_BITS + 1, emax, exp, signed=True)
        cap = b.op("min", 7, gap, b.const(s.term_bits + 1), signed=True)
        prod = b.op("mul", s.term_bits, dot, mant, signed=True)
        prod = b.op("shift", s.term_bits, prod, signed=True, value=s.guard_bits)
        term = b.round_shift_right_var(prod, cap, s.term_bits, signed=True)
        term = b.op("mux", s.term_bits, b.op("mul", 1, live, acc_en), term,
                    b.const(0, 1, False), signed=True)
        if external:
            acc = b.input(f"acc_in{lane}", s.acc_bits, signed=True)
            b.output(f"acc_next{lane}", b.op("add", s.acc_bits, acc, term, signed=True))
        else:
            acc = b.running("add", term, inputs["acc_first"], 0, s.acc_bits, signed=True)
        lsb = b.op("sub", _EXP_BITS + 1, emax, b.const(s.guard_bits), signed=True)
        for name, node in (("mant", mant), ("exp", exp), ("emax", emax), ("acc", acc)):
            b.output(f"{name}{lane}", node)
        b.output(f"y{lane}", float32_graph(b, acc, lsb))
    return b.graph
