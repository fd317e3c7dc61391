"""Fixed-point group dequantization: the W4A4 scale-accumulate as an integer datapath, bit-exact.

The float contract (:func:`golden.svdquant_ops.w4a4_gemm`) is ``y = sum_g p_g * dot_g`` with
``p_g = sx[m, g] * sw[n, g]``. The datapath instead receives each product as an unsigned
``mant_bits`` mantissa and an exponent, ``p~_g = mant_g * 2**e_g`` with
``mant_g in [2**(mant_bits-1), 2**mant_bits)``: the exact product rounded to nearest, ties to
even (an RTL scale unit gets it by multiplying the two scale mantissas, normalizing and rounding).
Per output (m, n), with the shared exponent ``E = max_g e_g``::

    term_g = round_shift_right((dot_g * mant_g) << guard_bits, E - e_g)   ties toward +inf
    acc    = sum_g term_g                                                 acc_bits, signed
    y      = fl32(acc * 2**(E - guard_bits))                              the one float rounding

Widths: ``dot_g`` signed ``dot_bits`` (|dot| <= 7680 for int4 x uint4 x 64 fits 14), a term
``dot_bits + mant_bits + guard_bits`` signed, ``acc_bits >= term bits + ceil(log2 G)`` never
overflows. Error against the exact ``T = sum_g p_g dot_g`` (derivation):

1. encoding: half an ulp of an mb-bit normalized mantissa, ``|p~_g - p_g| <= 2**-mb * p_g``;
2. alignment: ``round_shift_right`` errs by at most half an LSB of ``acc``, ``2**(E-guard-1)``,
   and only for shifted terms (``E - e_g > 0``, at most G - 1 of them). As the largest mantissa
   is >= 2**(mb-1), this is <= ``2**(-mb-guard) * max_g p~_g`` per term;
3. output: binary32 rounding, ``<= 2**-24 |y_fixed|``.

So ``|y - T| <= 2**-mb sum_g |dot_g| p_g + (G-1) 2**(E-guard-1) + 2**-24 |y_fixed|``, computed by
:func:`dequant_error_bound`. With mb = 16: relative error <= 2**-16 per term plus rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import round_shift_right
from .int_gemm import AccumulatorOverflowError
from .svdquant_ops import _check_group_size, _float_array, _int_array

__all__ = [
    "GroupDequantSpec",
    "accumulate_groups",
    "dequant_error_bound",
    "encode_scale_products",
    "group_dequant_gemm",
    "group_dots",
]


@dataclass(frozen=True)
class GroupDequantSpec:
    """Widths of the fixed-point group dequantizer (see the module docstring)."""

    mant_bits: int = 16
    dot_bits: int = 14
    guard_bits: int = 2
    acc_bits: int = 48

    def __post_init__(self) -> None:
        for name, lo, hi in (("mant_bits", 2, 24), ("dot_bits", 2, 24), ("guard_bits", 0, 16),
                             ("acc_bits", 2, 53)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
        if self.term_bits > 62:
            raise ValueError(f"term width {self.term_bits} bits exceeds 62")

    @property
    def term_bits(self) -> int:
        """Signed width of ``(dot * mant) << guard_bits``."""
        return self.dot_bits + self.mant_bits + self.guard_bits


@array_function("qx", "qw")
def group_dots(qx: ArrayLike, qw: ArrayLike, group_size: int = 64,
               act_signed: bool = True) -> ArrayLike:
    """Exact int64 group dots ``dot[m, n, g] = sum_{k in g} qx[m, k] * qw[n, k]``."""
    x = _int_array("qx", qx, -8 if act_signed else 0, 7 if act_signed else 15, 2)
    w = _int_array("qw", qw, -8, 7, 2)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"qw has K={w.shape[1]} columns, qx has K={x.shape[1]}")
    gs = _check_group_size(group_size, x.shape[1])
    ng = x.shape[1] // gs
    xg = x.reshape(x.shape[0], ng, gs)
    wg = w.reshape(w.shape[0], ng, gs)
    return np.einsum("mgk,ngk->mng", xg, wg)


@array_function("sx", "sw")
def encode_scale_products(sx: ArrayLike, sw: ArrayLike,
                          spec: GroupDequantSpec) -> tuple[ArrayLike, ArrayLike]:
    """``(mant, exp)`` int64 (M, N, G) with ``mant * 2**exp`` = RNE of ``sx[m,g] * sw[n,g]``.

    Scales are taken as float32 (their product is exact in float64) and must be >= 0; a zero
    product encodes as ``mant = 0`` (its ``exp`` is then irrelevant and set to 0).
    """
    a = _float_array("sx", sx, ndim=2).astype(np.float32).astype(np.float64)
    b = _float_array("sw", sw, ndim=2).astype(np.float32).astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sx has {a.shape[1]} groups, sw has {b.shape[1]}")
    for name, s in (("sx", a), ("sw", b)):
        if s.size and s.min() < 0:
            raise ValueError(f"{name} holds {s.min()} < 0; scales must be >= 0")
    p = a[:, None, :] * b[None, :, :]
    frac, e = np.frexp(p)  # p = frac * 2**e, frac in [0.5, 1)
    mant = np.rint(np.ldexp(frac, spec.mant_bits)).astype(np.int64)  # exact scaling, RNE
    exp = e.astype(np.int64) - spec.mant_bits
    carry = mant == (1 << spec.mant_bits)
    mant = np.where(carry, mant >> 1, mant)
    exp = np.where(carry, exp + 1, exp)
    return mant, np.where(mant == 0, 0, exp)


@array_function("dots", "mant", "exp")
def accumulate_groups(
    dots: ArrayLike, mant: ArrayLike, exp: ArrayLike, spec: GroupDequantSpec
) -> tuple[ArrayLike, ArrayLike]:
    """The integer datapath: ``(acc, lsb_exp)`` int64 (M, N), ``y = acc * 2**lsb_exp``.

    ``dots``, ``mant``, ``exp`` are (M, N, G) integers; groups with ``mant == 0`` add nothing and
    do not take part in the shared exponent. Raises ``ValueError`` on out-of-range inputs and
    :class:`~golden.int_gemm.AccumulatorOverflowError` when ``acc`` leaves ``acc_bits``.
    """
    half_d = 1 << (spec.dot_bits - 1)
    d = _int_array("dots", dots, -half_d, half_d - 1, 3)
    mt = _int_array("mant", mant, 0, (1 << spec.mant_bits) - 1, 3)
    ex = _int_array("exp", exp, -(1 << 20), 1 << 20, 3)
    if not d.shape == mt.shape == ex.shape:
        raise ValueError(f"dots {d.shape}, mant {mt.shape} and exp {ex.shape} must match")
    live = mt > 0
    if np.any(live & (mt < (1 << (spec.mant_bits - 1)))):
        raise ValueError(f"mant holds {int(mt[live].min())}, not normalized to mant_bits="
                         f"{spec.mant_bits}")
    big = np.iinfo(np.int64).min
    e_max = np.where(live, ex, big).max(axis=-1, initial=big)
    e_max = np.where(e_max == big, 0, e_max)
    # A shift past term_bits + 1 rounds every term to 0, exactly like the capped shift does.
    shift = np.minimum(np.where(live, e_max[..., None] - ex, 0), spec.term_bits + 1)
    prod = (d * mt) << spec.guard_bits
    terms = np.zeros_like(prod)
    for s in np.unique(shift):
        sel = shift == s
        terms[sel] = round_shift_right(prod[sel], int(s))
    acc = terms.sum(axis=-1)
    lim = 1 << (spec.acc_bits - 1)
    if acc.size and (acc.min() < -lim or acc.max() >= lim):
        bad = int(acc.min()) if acc.min() < -lim else int(acc.max())
        raise AccumulatorOverflowError(f"acc {bad} does not fit acc_bits={spec.acc_bits}")
    return acc, e_max - spec.guard_bits


@array_function("qx", "sx", "qw", "sw")
def group_dequant_gemm(
    qx: ArrayLike,
    sx: ArrayLike,
    qw: ArrayLike,
    sw: ArrayLike,
    group_size: int = 64,
    spec: GroupDequantSpec | None = None,
    act_signed: bool = True,
) -> ArrayLike:
    """Fixed-point counterpart of :func:`~golden.svdquant_ops.w4a4_gemm`, float32 (M, N).

    ``fl32(acc * 2**lsb_exp)``: exact in float64 (|acc| < 2**53), then one RNE to binary32.
    """
    spec = spec or GroupDequantSpec()
    dots = group_dots(qx, qw, group_size, act_signed)
    m, n, ng = dots.shape
    sx_a, sw_a = _float_array("sx", sx, ndim=2), _float_array("sw", sw, ndim=2)
    if sx_a.shape != (m, ng) or sw_a.shape != (n, ng):
        raise ValueError(f"sx {sx_a.shape} and sw {sw_a.shape} must be {(m, ng)} and {(n, ng)}")
    mant, exp = encode_scale_products(sx_a, sw_a, spec)
    acc, lsb = accumulate_groups(dots, mant, exp, spec)
    return np.ldexp(acc.astype(np.float64), lsb).astype(np.float32)


@array_function("dots", "sx", "sw")
def dequant_error_bound(dots: ArrayLike, sx: ArrayLike, sw: ArrayLike,
                        spec: GroupDequantSpec) -> ArrayLike:
    """Float64 (M, N) bound on ``|group_dequant_gemm - sum_g dot_g sx sw|`` (module docstring)."""
    d = np.abs(np.asarray(dots, np.float64))
    mant, exp = encode_scale_products(sx, sw, spec)
    a = _float_array("sx", sx, ndim=2).astype(np.float32).astype(np.float64)
    b = _float_array("sw", sw, ndim=2).astype(np.float32).astype(np.float64)
    p = a[:, None, :] * b[None, :, :]
    live = mant > 0
    e_max = np.where(live, exp, np.iinfo(np.int64).min).max(axis=-1)
    shifted = (live & (exp < e_max[..., None])).sum(axis=-1)
    align = shifted * np.ldexp(1.0, np.maximum(e_max - spec.guard_bits - 1, -1074))
    y_abs = (d * p).sum(axis=-1)
    return 2.0**-spec.mant_bits * y_abs + align + 2.0**-24 * (y_abs * (1 + 2.0**-spec.mant_bits)
                                                               + align)
