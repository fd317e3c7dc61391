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
overflows. The terms need not come from one kind of dot: :mod:`golden.svdquant_fixed` appends
the low-rank branch's wider dot as one more term (``dot_bits`` then covers the widest), and
``code_bits`` widens the operands of :func:`group_dots` (NVFP4 below).
Error against the exact ``T = sum_g p_g dot_g`` (derivation):

1. encoding: half an ulp of an mb-bit normalized mantissa, ``|p~_g - p_g| <= 2**-mb * p_g``;
2. alignment: ``round_shift_right`` errs by at most half an LSB of ``acc``, ``2**(E-guard-1)``,
   and only for shifted terms (``E - e_g > 0``, at most G - 1 of them). As the largest mantissa
   is >= 2**(mb-1), this is <= ``2**(-mb-guard) * max_g p~_g`` per term;
3. output: binary32 rounding, ``<= 2**-24 |y_fixed|``.

So ``|y - T| <= 2**-mb sum_g |dot_g| p_g + (G-1) 2**(E-guard-1) + 2**-24 |y_fixed|``, computed by
:func:`dequant_error_bound` (:func:`terms_error_bound` for any exact products ``p``). With
mb = 16: relative error <= 2**-16 per term plus rounding.

NVFP4 on the same unit (:func:`nvfp4_group_operands`): twice an E2M1 value is an integer in
-12..12, so the codes ``2 v`` are int8 array operands (not int4: ``code_bits=8``) and a 16-group
dot is an exact integer, ``|dot| <= 16 * 144 = 2304`` (13 bits: the default 14 covers it). The
scale product ``sa sb t / 4`` (``t = fl32(ta tb)``, the tensor scales as ``nvfp4_gemm`` forms
them) has 4 + 4 significant bits from the two E4M3 scales and 24 from ``t``: 32 bits, more than
the unit's 24-bit mantissa maximum, so the encoding rounds it like any INT4 scale product (exact
with ``mant_bits >= 8`` when ``t`` is a power of two). Fits, with these differences from
:func:`golden.nvfp4.nvfp4_gemm`: per-group float32 sums and a final ``fl32(acc * t)`` there, one
rounding here; ``t`` is folded into the weight-side scale by one float32 multiply; four times as
many scale products per output as INT4-64 (G = K/16); E2M1 codes pass a 16-entry decode table on
their way to the array. Measured: ~5e-6 relative to ``nvfp4_gemm`` at mant_bits = 16 (the
encoding's rounding), exact for power-of-two scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import round_shift_right
from .int_gemm import AccumulatorOverflowError
from .nvfp4 import NVFP4_GROUP, NVFP4Tensor, e2m1_decode
from .svdquant_ops import _check_group_size, _float_array, _int_array

__all__ = [
    "GroupDequantSpec",
    "accumulate_groups",
    "dequant_error_bound",
    "encode_products",
    "encode_scale_products",
    "group_dequant_gemm",
    "group_dots",
    "nvfp4_dequant_gemm",
    "nvfp4_group_operands",
    "terms_error_bound",
]


@dataclass(frozen=True)
class GroupDequantSpec:
    """Widths of the fixed-point group dequantizer (see the module docstring)."""

    mant_bits: int = 16
    dot_bits: int = 14
    guard_bits: int = 2
    acc_bits: int = 48

    def __post_init__(self) -> None:
        for name, lo, hi in (("mant_bits", 2, 24), ("dot_bits", 2, 40), ("guard_bits", 0, 16),
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


def _check_code_bits(code_bits: int) -> int:
    if isinstance(code_bits, bool) or not isinstance(code_bits, int) or not 2 <= code_bits <= 8:
        raise ValueError(f"code_bits={code_bits!r} must be an int in 2..8")
    return code_bits


@array_function("qx", "qw")
def group_dots(qx: ArrayLike, qw: ArrayLike, group_size: int = 64,
               act_signed: bool = True, *, code_bits: int = 4) -> ArrayLike:
    """Exact int64 group dots ``dot[m, n, g] = sum_{k in g} qx[m, k] * qw[n, k]``.

    Codes are ``code_bits``-wide integers: ``qw`` signed, ``qx`` signed (``act_signed``) or
    unsigned; the default 4 is INT4 (-8..7, 0..15), 8 the array's full int8 operand range.
    """
    half = 1 << (_check_code_bits(code_bits) - 1)
    lo, hi = (-half, half - 1) if act_signed else (0, 2 * half - 1)
    x = _int_array("qx", qx, lo, hi, 2)
    w = _int_array("qw", qw, -half, half - 1, 2)
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
    return encode_products(_scale_products(sx, sw), spec)


def _scale_products(sx: ArrayLike, sw: ArrayLike) -> np.ndarray:
    """Exact float64 (M, N, G) ``sx[m, g] * sw[n, g]`` of the scales taken as float32 (>= 0)."""
    a = _float_array("sx", sx, ndim=2).astype(np.float32).astype(np.float64)
    b = _float_array("sw", sw, ndim=2).astype(np.float32).astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sx has {a.shape[1]} groups, sw has {b.shape[1]}")
    for name, s in (("sx", a), ("sw", b)):
        if s.size and s.min() < 0:
            raise ValueError(f"{name} holds {s.min()} < 0; scales must be >= 0")
    return a[:, None, :] * b[None, :, :]


@array_function("p")
def encode_products(p: ArrayLike, spec: GroupDequantSpec) -> tuple[ArrayLike, ArrayLike]:
    """``(mant, exp)`` int64 (shape of ``p``): ``mant * 2**exp`` = RNE of ``p`` to ``mant_bits``.

    ``p`` holds the exact products (float64, >= 0); ``mant`` is normalized to
    ``[2**(mant_bits-1), 2**mant_bits)``, and ``p == 0`` encodes as ``mant = exp = 0``.
    """
    p = _float_array("p", p)
    if p.size and p.min() < 0:
        raise ValueError(f"p holds {p.min()} < 0; scale products must be >= 0")
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
    *,
    code_bits: int = 4,
) -> ArrayLike:
    """Fixed-point counterpart of :func:`~golden.svdquant_ops.w4a4_gemm`, float32 (M, N).

    ``fl32(acc * 2**lsb_exp)``: exact in float64 (|acc| < 2**53), then one RNE to binary32.
    ``code_bits`` as in :func:`group_dots`.
    """
    spec = spec or GroupDequantSpec()
    dots = group_dots(qx, qw, group_size, act_signed, code_bits=code_bits)
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
    return terms_error_bound(dots, _scale_products(sx, sw), spec)


@array_function("dots", "p")
def terms_error_bound(dots: ArrayLike, p: ArrayLike, spec: GroupDequantSpec) -> ArrayLike:
    """Float64 (M, N) bound on ``|fl32(acc 2**lsb) - sum_g dot_g p_g|`` for the datapath fed
    ``encode_products(p)``: the module docstring's derivation, term by term (dead terms,
    ``p == 0``, add nothing and take no part in ``E``)."""
    d = np.abs(np.asarray(dots, np.float64))
    p = np.asarray(p, np.float64)
    if d.shape != p.shape or d.ndim != 3:
        raise ValueError(f"dots {d.shape} and p {p.shape} must be the same (M, N, G) shape")
    mant, exp = encode_products(p, spec)
    live = mant > 0
    big = np.iinfo(np.int64).min
    e_max = np.where(live, exp, big).max(axis=-1, initial=big)
    e_max = np.where(e_max == big, 0, e_max)
    shifted = (live & (exp < e_max[..., None])).sum(axis=-1)
    align = shifted * np.ldexp(1.0, np.maximum(e_max - spec.guard_bits - 1, -1074))
    y_abs = (d * p).sum(axis=-1)
    return 2.0**-spec.mant_bits * y_abs + align + 2.0**-24 * (y_abs * (1 + 2.0**-spec.mant_bits)
                                                               + align)


def nvfp4_group_operands(
    a: NVFP4Tensor, b: NVFP4Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(qa, sa, qb, sb)``: NVFP4 ``a`` (M, K) and ``b`` (N, K) as group-dequantizer operands.

    ``qa = 2 e2m1(a.codes)``, ``qb = 2 e2m1(b.codes)``: int8 in -12..12 (``code_bits=8``).
    ``sa = e4m3(a.scales) / 4`` float32 (M, K/16), exact; ``sb = fl32(e4m3(b.scales) * t)``
    float32 (N, K/16) with ``t = fl32(ta * tb)`` as :func:`~golden.nvfp4.nvfp4_gemm` forms it:
    one rounding, ``|sb - sb_e4m3 t| <= 2**-24 sb_e4m3 t`` (exact when ``t`` is a power of two
    and ``sb`` stays normal). Then ``sa[m,g] sb[n,g] dot_g(qa, qb) = sa_e4m3 sb t * 4 dot_g / 4``,
    so ``group_dequant_gemm(qa, sa, qb, sb, 16, spec, code_bits=8)`` computes ``deq(a) deq(b)^T``
    within ``dequant_error_bound(...) + 2**-24 sum_g |p_g dot_g|``; ``nvfp4_gemm`` itself errs
    by its float32 sums, ``<= (G + 1) 2**-24 sum_g |p_g dot_g|`` to first order.
    """
    if a.codes.ndim != 2 or b.codes.ndim != 2 or a.codes.shape[1] != b.codes.shape[1]:
        raise ValueError(f"a and b must be (M, K) and (N, K), got {a.codes.shape}, {b.codes.shape}")
    qa = (2 * e2m1_decode(a.codes)).astype(np.int8)  # 2 * {0, .5, 1, 1.5, 2, 3, 4, 6}: exact
    qb = (2 * e2m1_decode(b.codes)).astype(np.int8)
    t = np.float32(np.float32(a.global_scale) * np.float32(b.global_scale))
    sa = (a.scales.astype(np.float32) * np.float32(0.25)).astype(np.float32)
    sb = (b.scales.astype(np.float32) * t).astype(np.float32)
    if not np.isfinite(sb).all():
        raise ValueError(f"b.scales * t overflows float32 (t = {t})")
    return qa, sa, qb, sb


def nvfp4_dequant_gemm(a: NVFP4Tensor, b: NVFP4Tensor,
                       spec: GroupDequantSpec | None = None) -> np.ndarray:
    """NVFP4 ``deq(a) @ deq(b)^T`` on the group dequantizer, float32 (M, N): the
    :func:`group_dequant_gemm` of :func:`nvfp4_group_operands` (groups of 16, int8 codes)."""
    qa, sa, qb, sb = nvfp4_group_operands(a, b)
    return group_dequant_gemm(qa, sa, qb, sb, NVFP4_GROUP, spec, code_bits=8)
