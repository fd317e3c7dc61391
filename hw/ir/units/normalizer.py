"""The normalizer unit: a row of numerators divided by one denominator, as
:func:`golden.linear_attention_fixed.normalize` defines it (stage 3 of linear attention, and
the deferred softmax normalization of the fixed-point attention head).

Per row, with ``R = den_bits``, ``F = recip_frac_bits``, ``Fo = out_frac_bits``::

    sh    = max(lod(den) - R, 0)                 leading-one detect, shared by the row
    den_n = round_shift_right(den, sh)           <= 2**R
    rcp   = recip(den_n) = round(2**(F+R) / den_n), 0 for den = 0    shared by the row
    per lane:  num_n = round_shift_right(num, sh)
               out   = saturate(round_shift_right(num_n * rcp, F + R - Fo), out_bits)

The unit computes a row's ``sh`` and ``rcp`` (:func:`reciprocal_graph`, a long division once
lowered: dozens of pipeline stages) ahead of the row's lanes (:func:`scale_graph`), so the
numerators do not wait for the division; :func:`normalizer_graph` is the same arithmetic in one
pass. ``den = 0`` gives ``rcp = 0`` and so ``out = 0``, golden's rule. As ``rcp >= 2**F`` whenever
``den > 0``, a numerator with ``|num_n| >= 2**(out_bits - 1 + R - Fo)`` saturates the output
whatever ``rcp`` is, so ``num_n`` is clamped to ``out_bits + R - Fo + 1`` bits before the
multiplier (25 x 41 bits at the defaults, not 48 x 41). Widths: ``num`` signed
``num_bits``, ``den`` unsigned ``den_in_bits``; ``rcp <= 2**(F+R)`` (F+R+1 bits); the product
keeps every bit of the clamped numerator times ``rcp``, so no node wraps for any input.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..primitive import PrimitiveGraph
from .build import GraphBuilder

__all__ = ["NormalizerShape", "normalizer_graph", "reciprocal_graph", "scale_graph"]


@dataclass(frozen=True)
class NormalizerShape:
    """What one normalizer datapath is built for (see the module docstring)."""

    lanes: int = 16
    den_bits: int = 16
    recip_frac_bits: int = 24
    out_frac_bits: int = 8
    num_bits: int = 48
    den_in_bits: int = 48

    def __post_init__(self) -> None:
        for name, lo, hi in (("lanes", 1, 256), ("den_bits", 2, 30), ("num_bits", 2, 64),
                             ("den_in_bits", 1, 64)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
        if not 0 <= self.recip_frac_bits <= 53 - self.den_bits:
            raise ValueError(f"recip_frac_bits={self.recip_frac_bits!r} must be in "
                             f"0..{53 - self.den_bits}")
        if not 0 <= self.out_frac_bits <= self.recip_frac_bits + self.den_bits:
            raise ValueError(f"out_frac_bits={self.out_frac_bits!r} must be in "
                             f"0..{self.recip_frac_bits + self.den_bits}")

    @property
    def out_bits(self) -> int:
        return 8 + self.out_frac_bits


def _reciprocal(b: GraphBuilder, den: str, shape: NormalizerShape) -> tuple[str, str]:
    """``(sh, rcp)`` of a row's denominator (the module docstring's first three lines)."""
    r, f = shape.den_bits, shape.recip_frac_bits
    length = b.op("lod", shape.den_in_bits.bit_length(), den)
    excess = b.op("sub", shape.den_in_bits.bit_length() + 1, length, b.const(r), signed=True)
    sh = b.op("max", shape.den_in_bits.bit_length(), excess, b.const(0, 1, False))
    den_n = b.round_shift_right_var(den, sh, r + 1, signed=False)
    return sh, b.op("recip", f + r + 1, den_n, value=f + r)


def _scale(b: GraphBuilder, num: str, sh: str, rcp: str, shape: NormalizerShape) -> str:
    """One lane's ``out`` from its numerator and the row's ``sh``, ``rcp``."""
    r, f, fo = shape.den_bits, shape.recip_frac_bits, shape.out_frac_bits
    num_n = b.round_shift_right_var(num, sh, shape.num_bits, signed=True)
    # rcp >= 2**F whenever den > 0, so |num_n| >= 2**(out_bits - 1 + R - Fo) saturates the
    # output anyway: clamping num_n there keeps every result and narrows the multiplier.
    keep = min(shape.out_bits + r - fo + 1, shape.num_bits)
    num_n = b.saturate(num_n, keep)
    prod = b.op("mul", keep + f + r + 1, num_n, rcp, signed=True)
    scaled = b.round_shift_right(prod, f + r - fo, keep + fo + 2)
    return b.saturate(scaled, shape.out_bits)


def normalizer_graph(shape: NormalizerShape) -> PrimitiveGraph:
    """Inputs ``den`` (unsigned) and ``num<l>`` (signed) per lane; outputs ``out<l>`` (signed
    ``8 + out_frac_bits`` bits) per lane and ``shift`` (the leading-one shift ``sh``): the
    whole row in one pass (every lane's numerator waits for the reciprocal)."""
    b = GraphBuilder()
    sh, rcp = _reciprocal(b, b.input("den", shape.den_in_bits), shape)
    for lane in range(shape.lanes):
        num = b.input(f"num{lane}", shape.num_bits, signed=True)
        b.output(f"out{lane}", _scale(b, num, sh, rcp, shape))
    b.output("shift", sh)
    return b.graph


def reciprocal_graph(shape: NormalizerShape) -> PrimitiveGraph:
    """The row part alone: input ``den``, outputs ``shift`` and ``rcp`` (``F + R + 1`` bits),
    which the unit registers per row while the rows before it are scaled."""
    b = GraphBuilder()
    sh, rcp = _reciprocal(b, b.input("den", shape.den_in_bits), shape)
    b.output("shift", sh)
    b.output("rcp", rcp)
    return b.graph


def scale_graph(shape: NormalizerShape) -> PrimitiveGraph:
    """The lanes alone: inputs ``shift``, ``rcp`` (a row's, from :func:`reciprocal_graph`) and
    ``num<l>``; outputs ``out<l>``. Composed with :func:`reciprocal_graph` it computes
    :func:`normalizer_graph`'s outputs without the numerators waiting for the division."""
    b = GraphBuilder()
    sh = b.input("shift", shape.den_in_bits.bit_length())
    rcp = b.input("rcp", shape.recip_frac_bits + shape.den_bits + 1)
    for lane in range(shape.lanes):
        num = b.input(f"num{lane}", shape.num_bits, signed=True)
        b.output(f"out{lane}", _scale(b, num, sh, rcp, shape))
    return b.graph
