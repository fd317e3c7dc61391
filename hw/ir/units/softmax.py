"""The softmax unit: attention weights from fixed-point logits, as
:func:`golden.attention_fixed.attention_weights` defines them (golden.softmax_fixed's
base-2 exponent, then quantized to the array's operand), with the row max and the row sum
reduced on the way.

Per lane, with the row's max ``m`` (from an earlier pass over the row), ``c`` the
:class:`~golden.softmax_fixed.SoftmaxFixedConfig`, ``P = c.exp_bits``, ``Ft = c.t_frac_bits``,
``Tb = c.table_bits``, ``wb = weight_bits``::

    d = x - m;  t = round_shift_right(d * L, Fi + Lb - Ft)         L = log2(e) code
    n = t >> Ft;  f = t - (n << Ft);  i = f >> (Ft - Tb);  r = f mod 2**(Ft - Tb)
    y = T[i] + round_shift_right(D[i] * r, Ft - Tb)                 ROMs T and D = T[i+1] - T[i]
    e = round_shift_right(y, min(-n, P + 2))
    w = valid ? min(round_shift_right(e, P - wb + 1), 2**(wb-1) - 1) : 0

and two reductions over the lanes and the cycles since ``first``: ``max`` (of the valid
``x``) and ``sum`` (of ``w``), registers restarted by ``first``. A row is streamed twice: the
first pass finds ``m`` (the ``max`` output), the second produces the weights and their sum.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from golden.softmax_fixed import SoftmaxFixedConfig, exp2_table

from ..primitive import PrimitiveGraph
from .build import GraphBuilder

__all__ = ["SoftmaxShape", "softmax_graph"]

_X_BITS = 32


@dataclass(frozen=True)
class SoftmaxShape:
    """What one softmax datapath is built for (see the module docstring)."""

    lanes: int = 16
    config: SoftmaxFixedConfig = field(default_factory=SoftmaxFixedConfig)
    weight_bits: int = 8
    sum_bits: int = 32

    def __post_init__(self) -> None:
        for name, lo, hi in (("lanes", 1, 256), ("weight_bits", 2, 16), ("sum_bits", 8, 64)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
        if self.weight_bits - 1 > self.config.exp_bits:
            raise ValueError(f"weight_bits={self.weight_bits} needs exp_bits >= "
                             f"{self.weight_bits - 1}, got {self.config.exp_bits}")


def _weight(b: GraphBuilder, x: str, valid: str, rowmax: str, shape: SoftmaxShape) -> str:
    """One lane's weight (the steps of the module docstring)."""
    c = shape.config
    ft, tb, p, wb = c.t_frac_bits, c.table_bits, c.exp_bits, shape.weight_bits
    d = b.op("sub", _X_BITS + 1, x, rowmax, signed=True)
    code = c.log2e_code
    prod = b.op("mul", _X_BITS + 1 + code.bit_length(), d, b.const(code), signed=True)
    tw = _X_BITS + 2 + code.bit_length()
    t = b.round_shift_right(prod, c.in_frac_bits + c.log2e_bits - ft, tw)
    n = b.op("shift", tw, t, signed=True, value=-ft)
    f = b.op("sub", ft, t, b.op("shift", tw, n, signed=True, value=ft))
    idx = b.op("shift", tb, f, value=-(ft - tb))
    table = exp2_table(c)
    y = b.op("rom", p + 2, idx, table=tuple(int(v) for v in table[:-1]))
    if c.interpolate and ft > tb:
        rest = b.op("sub", ft - tb, f, b.op("shift", ft, idx, value=ft - tb))
        diff = b.op("rom", p + 1, idx, table=tuple(int(v) for v in table[1:] - table[:-1]))
        step = b.op("mul", p + 1 + ft - tb, diff, rest)
        y = b.op("add", p + 2, y, b.round_shift_right(step, ft - tb, p + 2, signed=False))
    neg_n = b.op("sub", tw, b.const(0), n, signed=True)
    cap = b.op("min", (p + 2).bit_length() + 1, neg_n, b.const(p + 2), signed=True)
    e = b.round_shift_right_var(y, cap, p + 2, signed=False)
    q = b.round_shift_right(e, p - wb + 1, p + 2, signed=False)
    w = b.op("min", wb - 1, q, b.const((1 << (wb - 1)) - 1))
    return b.op("mux", wb - 1, valid, w, b.const(0, 1, False))


def softmax_graph(shape: SoftmaxShape) -> PrimitiveGraph:
    """Inputs ``rowmax`` (signed 32), ``first`` (1 bit), and per lane ``x<l>`` (signed 32) and
    ``valid<l>``; outputs ``w<l>`` (``weight_bits - 1`` bits, non-negative), ``max`` (signed
    32: the max of the valid ``x`` since ``first``) and ``sum`` (of the weights since
    ``first``, ``sum_bits`` unsigned)."""
    b = GraphBuilder()
    rowmax = b.input("rowmax", _X_BITS, signed=True)
    first = b.input("first", 1)
    least = -(1 << (_X_BITS - 1))
    weights, masked = [], []
    for lane in range(shape.lanes):
        x = b.input(f"x{lane}", _X_BITS, signed=True)
        valid = b.input(f"valid{lane}", 1)
        weights.append(_weight(b, x, valid, rowmax, shape))
        b.output(f"w{lane}", weights[-1])
        masked.append(b.op("mux", _X_BITS, valid, x, b.const(least, _X_BITS, True),
                           signed=True))
    top = b.tree("max", masked, _X_BITS, signed=True)
    total = b.tree("add", weights, shape.sum_bits)
    b.output("max", b.running("max", top, first, least, _X_BITS, signed=True))
    b.output("sum", b.running("add", total, first, 0, shape.sum_bits))
    return b.graph
