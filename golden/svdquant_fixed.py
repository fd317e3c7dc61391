"""Fixed-point SVDQuant layer, bit-exact: W4A4 residual + low-rank branch on one int8 array and one
group dequantizer (:mod:`golden.group_dequant`), accumulated into the same output.

Inputs: smoothed activations ``x_hat`` (M, K) (as float32), the W4A4 residual ``(qx, sx) =
quantize_int4(x_hat, gs)`` and ``(qw, sw)``, the branch ``down`` (r, K), ``up`` (N, r) as
:class:`~golden.svdquant.SVDQuantLinear` stores them; LoRAs are already concatenated into them
(``with_lora``): more rank, nothing new. ``Q_b``: symmetric per-row quantization to ``b =
branch_bits`` (:func:`quantize_symmetric`: ``quantize_int4``'s float conventions, ``qmax =
2**(b-1) - 1``). The datapath (``fl32`` = one binary32 RNE operation)::

    1. xl, sxl  = Q_b(x_hat)                 per row m; sxl = fl32(absmax / qmax), 1 if all zero
    2. c1, sl1  = Q_b(down);  L1q = c1^T     (K, r), per rank r
    3. u32      = xl @ L1q                   exact, |u32| <= K 2**(2b-2) < 2**(u_bits-1)
    4. s_m      = max(bitlen(max_r |u32[m, r]|) - (b-1), 0)
       u        = saturate(round_shift_right(u32[m], s_m), b)      ties toward +inf
    5. L2       = fl32(sl1[r] * up[n, r]);  c2, sl2 = Q_b(L2 per n);  L2q = c2^T   (r, N)
    6. dot_lr   = u @ L2q                    exact, |dot_lr| <= r 2**(2b-2)
    7. G + 1 terms into accumulate_groups: the int4 group dots with p_g = sx[m,g] sw[n,g], and
       dot_lr with p_lr = sxl[m] sl2[n] 2**s_m: (mant, exp) = encode(sxl sl2), exp += s_m (the
       power of two only moves the exponent). dot_lr == 0 is a dead term (mant := 0): it adds
       nothing and does not move E, so a zero branch is group_dequant_gemm bit for bit.
       y = fl32(acc 2**lsb_exp).

The rank scales are folded into L2, so the branch is ``sum_r u L2q sxl 2**s_m sl2``. The bias
(``epilogue_bias``) is not in this datapath: the mapper adds it in the output epilogue.
``act_unsigned`` and NVFP4 layers are not covered (NVFP4 GEMMs: ``nvfp4_group_operands``).
Widths, all validated by :class:`SVDQuantFixedSpec`: ``u_bits`` (32: K <= 131071 at b = 8),
:func:`lowrank_dot_bits` (21 at r = 32, b = 8; int4 groups need 14), and
``|acc| <= (G 120 gs + r 2**(2b-2)) (2**mb - 1) 2**guard``.

Error (a), :func:`fixed_error_bound`, against ``T = sum_g p_g dot_g + p_lr dot_lr`` of the same
quantized operands: ``p_lr`` is exact in float64 and its encoding errs by ``<= 2**-mb p_lr``
(adding s_m keeps the relative error), so it is one more term of group_dequant's derivation:
``|y - T| <= 2**-mb sum |dot| p + (#shifted) 2**(E-guard-1) + 2**-24 |y|``.

Error (b), :func:`branch_error_bound`: against the exact ``B = a D^T U^T`` (``a = x_hat``,
``D = down``, ``U = up``, float32 inputs, normal scales). ``Q_b`` errs by ``|x - q s| <= e(s) =
s (1/2 + qmax 2**-23)`` (``fl32(absmax/qmax)`` and ``fl32(x/s)`` add 2**-24 relative each; no
clamp triggers). Splitting ``B - B_fixed`` at ``u32`` and at ``sl2 L2q``::

    steps 1-3: |a D^T - sxl sl1 u32|[m,r] <= e(sl1) sum_k |a_mk| + e(sxl) sum_k |D_rk|
                                             + K e(sxl) e(sl1),        times |U| summed over r
    step 5:    sxl sum_r |u32| (2**-24 sl1 |U[n,r]| + 2**-150 + e(sl2))   (fl32 fold, then Q_b)
    step 4:    sxl sl2 (2**s - 1) sum_r |L2q[r, n]|                    (requant_error_bound)

Step 4: without saturation rounding errs by <= 2**(s-1); saturating needs ``u32 >= (2**(b-1) -
1/2) 2**s`` while ``|u32| < 2**(s+b-1)`` (definition of s), leaving ``u32 - (2**(b-1) - 1) 2**s
< 2**s``; so ``|u 2**s - u32| <= 2**s - 1`` (0 at s = 0), which is ``<= 2**(2-b) max_r |u32|``
as ``max_r |u32| >= 2**(s+b-2)`` for s > 0 (1/64 of the row maximum at b = 8).
Measured (tests: M = 8, K = 128, N = 16, r = 8 outlier layers): (a) reaches 0.77-0.93 of its
bound. Branch relative error 1.1-1.2e-2 at b = 8 (x, down, L2 and step 4 ~5e-3 each), 4-5e-5 at
b = 16; bound (b) is 8-16x the worst error. These branches carry ~99 % of the output, so the
layer is as far from golden's float layer, and its error against the float64 ``x W^T`` grows
1.8 -> 2.0 % at b = 8 (unchanged at b = 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import round_shift_right, saturate
from .group_dequant import (
    GroupDequantSpec,
    accumulate_groups,
    encode_scale_products,
    group_dots,
    terms_error_bound,
)
from .int_gemm import int_gemm
from .int_types import IntType
from .svdquant import SVDQuantLinear
from .svdquant_ops import _float_array, _int_array, quantize_int4

__all__ = [
    "BranchOperands",
    "BranchOverhead",
    "SVDQuantFixedResult",
    "SVDQuantFixedSpec",
    "branch_error_bound",
    "branch_overhead",
    "fixed_error_bound",
    "lowrank_dot_bits",
    "quantize_branch",
    "quantize_symmetric",
    "requant_error_bound",
    "requantize_rows",
    "svdquant_fixed_int",
    "svdquant_fixed_layer",
    "svdquant_fixed_linear",
]


def _check_int(name: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or not lo <= v <= hi:
        raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
    return int(v)


def lowrank_dot_bits(rank: int, branch_bits: int) -> int:
    """Signed width of ``dot_lr = u @ L2q``: ``|dot_lr| <= rank 2**(2b-2)`` (both codes can be
    ``-2**(b-1)``), so ``bitlen(rank << (2b-2)) + 1``."""
    r = _check_int("rank", rank, 0, 1 << 24)
    return (r << (2 * _check_int("branch_bits", branch_bits, 2, 16) - 2)).bit_length() + 1


@dataclass(frozen=True)
class SVDQuantFixedSpec:
    """The fixed-point SVDQuant layer's widths, valid for every layer with ``K <= max_k``,
    ``rank <= max_rank`` (module docstring). ``u_bits``: the array's accumulator for ``u32``.
    ``dequant``: the group dequantizer; ``None`` derives mant 16, guard 2, the needed
    ``dot_bits`` and ``acc_bits = max(48, needed)``. A given one must be wide enough."""

    group_size: int = 64
    branch_bits: int = 8
    max_rank: int = 64
    max_k: int = 16384
    u_bits: int = 32
    dequant: GroupDequantSpec | None = None

    def __post_init__(self) -> None:
        for name, lo, hi in (("group_size", 1, 1 << 16), ("branch_bits", 8, 16),
                             ("max_rank", 0, 1 << 16), ("max_k", 1, 1 << 24), ("u_bits", 2, 53)):
            _check_int(name, getattr(self, name), lo, hi)
        need_u = (self.max_k << (2 * self.branch_bits - 2)).bit_length() + 1
        if self.u_bits < need_u:
            raise ValueError(f"u_bits={self.u_bits} < {need_u} needed for K <= max_k="
                             f"{self.max_k} at branch_bits={self.branch_bits}")
        dq = self.dequant
        if dq is None:
            acc = max(48, self.acc_bits_needed(16, 2))
            if acc > 53:
                raise ValueError(f"max_rank={self.max_rank}, branch_bits={self.branch_bits} need "
                                 f"acc_bits={acc} > 53 at mant_bits=16: pass a dequant spec")
            dq = GroupDequantSpec(dot_bits=self.dot_bits_needed, acc_bits=acc)
            object.__setattr__(self, "dequant", dq)
        if not isinstance(dq, GroupDequantSpec):
            raise ValueError(f"dequant={dq!r} must be a GroupDequantSpec or None")
        if dq.dot_bits < self.dot_bits_needed:
            raise ValueError(f"dequant.dot_bits={dq.dot_bits} < {self.dot_bits_needed} needed for "
                             f"rank {self.max_rank} at branch_bits={self.branch_bits}")
        if dq.acc_bits < self.acc_bits_needed(dq.mant_bits, dq.guard_bits):
            raise ValueError(f"dequant.acc_bits={dq.acc_bits} < "
                             f"{self.acc_bits_needed(dq.mant_bits, dq.guard_bits)} needed")

    @classmethod
    def for_shape(cls, k: int, rank: int, **kw: object) -> SVDQuantFixedSpec:
        """The narrowest spec for one layer shape (``max_k = k``, ``max_rank = rank``)."""
        return cls(max_k=k, max_rank=rank, **kw)  # type: ignore[arg-type]

    @property
    def dot_bits_needed(self) -> int:
        """Widest dot: int4 groups (``|dot| <= 120 gs`` with unsigned activations) or low rank."""
        return max((120 * self.group_size).bit_length() + 1,
                   lowrank_dot_bits(self.max_rank, self.branch_bits))

    def acc_bits_needed(self, mant_bits: int, guard_bits: int) -> int:
        """Signed bits of the worst ``|acc|``: every term at its largest dot and mantissa
        (aligning never grows a term)."""
        dots = (self.max_k // self.group_size) * 120 * self.group_size + (
            self.max_rank << (2 * self.branch_bits - 2))
        return ((dots * ((1 << mant_bits) - 1)) << guard_bits).bit_length() + 1


@array_function("x")
def quantize_symmetric(x: ArrayLike, bits: int) -> tuple[ArrayLike, ArrayLike]:
    """``Q_b`` per row of ``x`` (R, C) taken as float32: ``s = fl32(absmax / qmax)`` (1 for a
    zero row), ``q = clamp(rint(fl32(x / s)), -qmax - 1, qmax)``, ``qmax = 2**(bits-1) - 1``;
    ``quantize_int4``'s conventions with one group per row. Returns (codes int8 (int16 above 8
    bits) (R, C), scales float32 (R,))."""
    qmax = (1 << (_check_int("bits", bits, 2, 16) - 1)) - 1
    a = _float_array("x", x, ndim=2).astype(np.float32)
    scale = (np.abs(a).max(axis=1, initial=0) / np.float32(qmax)).astype(np.float32)
    scale = np.where(scale == 0, np.float32(1), scale)
    codes = np.clip(np.rint(a / scale[:, None]), -qmax - 1, qmax)
    return codes.astype(np.int8 if bits <= 8 else np.int16), scale


@dataclass(frozen=True, eq=False)
class BranchOperands:
    """The branch's array operands: ``xl`` (M, K) and ``sxl`` (M,); ``l1q`` (K, r), ``sl1``
    (r,); ``l2q`` (r, N), ``sl2`` (N,); codes ``branch_bits`` wide, scales float32."""

    xl: np.ndarray
    sxl: np.ndarray
    l1q: np.ndarray
    sl1: np.ndarray
    l2q: np.ndarray
    sl2: np.ndarray
    branch_bits: int

    def __post_init__(self) -> None:
        (m, k), (r, n) = self.xl.shape, self.l2q.shape
        want = {"sxl": (m,), "l1q": (k, r), "sl1": (r,), "sl2": (n,)}
        for name, shape in want.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")


@array_function("x_hat", "down", "up")
def quantize_branch(x_hat: ArrayLike, down: ArrayLike, up: ArrayLike,
                    branch_bits: int = 8) -> BranchOperands:
    """Steps 1, 2 and 5: ``Q_b`` of x_hat (per row), down (per rank) and the folded
    ``L2 = fl32(sl1[r] up[n, r])`` (per output n). ``down`` (r, K), ``up`` (N, r) as float32."""
    d = _float_array("down", down, ndim=2)
    u = _float_array("up", up, ndim=2).astype(np.float32)
    if u.shape[1] != d.shape[0]:
        raise ValueError(f"up has shape {u.shape}, expected (N, r={d.shape[0]})")
    xl, sxl = quantize_symmetric(x_hat, branch_bits)
    if xl.shape[1] != d.shape[1]:
        raise ValueError(f"x_hat has K={xl.shape[1]}, down has K={d.shape[1]}")
    c1, sl1 = quantize_symmetric(d, branch_bits)
    c2, sl2 = quantize_symmetric((sl1[None, :] * u).astype(np.float32), branch_bits)
    return BranchOperands(xl, sxl, np.ascontiguousarray(c1.T), sl1, np.ascontiguousarray(c2.T),
                          sl2, branch_bits)


@array_function("u32")
def requantize_rows(u32: ArrayLike, bits: int) -> tuple[ArrayLike, ArrayLike]:
    """Step 4: ``(shift, u)``, int64 (M,) and (M, r): ``shift = max(bitlen(max_r |u32|) -
    (bits-1), 0)`` per row, ``u = saturate(round_shift_right(u32, shift), bits)``."""
    b = _check_int("bits", bits, 2, 32)
    v = _int_array("u32", u32, -(1 << 52), 1 << 52, 2)
    _, bitlen = np.frexp(np.abs(v).max(axis=1, initial=0).astype(np.float64))  # exact < 2**53
    shift = np.maximum(bitlen.astype(np.int64) - (b - 1), 0)
    u = np.zeros_like(v)
    for s in np.unique(shift):
        rows = shift == s
        u[rows] = saturate(round_shift_right(v[rows], int(s)), b)
    return shift, u


@dataclass(frozen=True, eq=False)
class SVDQuantFixedResult:
    """Every register of the datapath (int64): ``u32`` (M, r), ``shift`` (M,) = s_m, ``u`` (M, r),
    ``dot_lr`` (M, N); the unit's inputs ``dots``, ``mant``, ``exp`` (M, N, G + 1), the low-rank
    term last; its outputs ``acc``, ``lsb_exp`` (M, N). ``y`` is the float32 output."""

    u32: np.ndarray
    shift: np.ndarray
    u: np.ndarray
    dot_lr: np.ndarray
    dots: np.ndarray
    mant: np.ndarray
    exp: np.ndarray
    acc: np.ndarray
    lsb_exp: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """``fl32(acc 2**lsb_exp)`` (exact in float64, then one RNE)."""
        return np.ldexp(self.acc.astype(np.float64), self.lsb_exp).astype(np.float32)


def _scales(name: str, s: ArrayLike, n: int) -> np.ndarray:
    """Float32 scales of shape (n,), all >= 0, or ``ValueError`` naming ``name``."""
    a = _float_array(name, s, ndim=1).astype(np.float32)
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},)")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} holds {a.min()} < 0; scales must be >= 0")
    return a


@array_function("qx", "sx", "qw", "sw", "xl", "sxl", "l1q", "l2q", "sl2")
def svdquant_fixed_int(
    qx: ArrayLike, sx: ArrayLike, qw: ArrayLike, sw: ArrayLike, xl: ArrayLike, sxl: ArrayLike,
    l1q: ArrayLike, l2q: ArrayLike, sl2: ArrayLike, spec: SVDQuantFixedSpec | None = None,
    act_signed: bool = True,
) -> SVDQuantFixedResult:
    """Steps 3, 4, 6, 7 on quantized operands (module docstring); ``spec`` defaults to
    :meth:`SVDQuantFixedSpec.for_shape` with ``group_size = K / sx.shape[1]``, 8-bit branch.
    Raises ``ValueError`` on bad operands, ``AccumulatorOverflowError`` never for a valid spec."""
    k, ng, r = np.shape(qx)[-1], np.shape(sx)[-1], np.shape(l1q)[-1]
    spec = spec or SVDQuantFixedSpec.for_shape(k, r, group_size=k // max(ng, 1))
    dq, b = spec.dequant, spec.branch_bits
    assert dq is not None
    dots = group_dots(qx, qw, spec.group_size, act_signed)
    m, n, ng = dots.shape
    if np.shape(sx) != (m, ng) or np.shape(sw) != (n, ng):
        raise ValueError(f"sx {np.shape(sx)} and sw {np.shape(sw)} must be {(m, ng)}, {(n, ng)}")
    half = 1 << (b - 1)
    x8 = _int_array("xl", xl, -half, half - 1, 2)
    l1 = _int_array("l1q", l1q, -half, half - 1, 2)
    l2 = _int_array("l2q", l2q, -half, half - 1, 2)
    if x8.shape != (m, k) or l1.shape[0] != k or l2.shape != (r, n):
        raise ValueError(f"xl {x8.shape}, l1q {l1.shape}, l2q {l2.shape} must be {(m, k)}, "
                         f"{(k, r)}, {(r, n)}")
    if k > spec.max_k or r > spec.max_rank:
        raise ValueError(f"K={k}, rank={r} exceed the spec's max_k={spec.max_k}, "
                         f"max_rank={spec.max_rank}")
    s_xl, s_l2 = _scales("sxl", sxl, m), _scales("sl2", sl2, n)
    u32 = int_gemm(x8, l1, IntType(b), IntType(b), spec.u_bits)
    shift, u = requantize_rows(u32, b)
    dot_lr = u @ l2
    mant, exp = encode_scale_products(sx, sw, dq)
    m_lr, e_lr = encode_scale_products(s_xl[:, None], s_l2[:, None], dq)
    live = (m_lr[..., 0] > 0) & (dot_lr != 0)
    m_lr = np.where(live, m_lr[..., 0], 0)
    e_lr = np.where(live, e_lr[..., 0] + shift[:, None], 0)
    dots = np.concatenate([dots, dot_lr[..., None]], axis=-1)
    mant = np.concatenate([mant, m_lr[..., None]], axis=-1)
    exp = np.concatenate([exp, e_lr[..., None]], axis=-1)
    acc, lsb = accumulate_groups(dots, mant, exp, dq)
    return SVDQuantFixedResult(u32, shift, u, dot_lr, dots, mant, exp, acc, lsb)


@array_function("x_hat", "qw", "sw", "down", "up")
def svdquant_fixed_linear(x_hat: ArrayLike, qw: ArrayLike, sw: ArrayLike, down: ArrayLike,
                          up: ArrayLike, spec: SVDQuantFixedSpec | None = None) -> ArrayLike:
    """The fixed-point layer output, float32 (M, N), without bias: quantize ``x_hat`` (int4 with
    group ``K / sw.shape[1]``, and the branch), then :func:`svdquant_fixed_int`."""
    k, ng = np.shape(qw)[-1], np.shape(sw)[-1]
    spec = spec or SVDQuantFixedSpec.for_shape(k, np.shape(down)[0], group_size=k // max(ng, 1))
    qx, sx = quantize_int4(x_hat, spec.group_size, signed=True)
    ops = quantize_branch(x_hat, down, up, spec.branch_bits)
    return svdquant_fixed_int(qx, sx, qw, sw, ops.xl, ops.sxl, ops.l1q, ops.l2q, ops.sl2,
                              spec).y


@array_function("x_hat")
def svdquant_fixed_layer(x_hat: ArrayLike, layer: SVDQuantLinear,
                         spec: SVDQuantFixedSpec | None = None) -> ArrayLike:
    """:func:`svdquant_fixed_linear` of an INT4, signed-activation ``layer`` on
    ``x_hat = fl32(x / layer.smooth)``; add ``layer.epilogue_bias`` for ``layer(x)``."""
    if layer.fmt != "int4" or layer.act_unsigned:
        raise ValueError(f"the fixed path takes INT4 layers with signed activations, got "
                         f"fmt={layer.fmt!r}, act_unsigned={layer.act_unsigned}")
    spec = spec or SVDQuantFixedSpec.for_shape(layer.in_features, layer.rank,
                                               group_size=layer.group_size)
    if spec.group_size != layer.group_size:
        raise ValueError(f"spec.group_size={spec.group_size} != layer.group_size="
                         f"{layer.group_size}")
    return svdquant_fixed_linear(x_hat, layer.qweight, layer.wscales, layer.lora_down,
                                 layer.lora_up, spec)


@array_function("sx", "sw", "sxl", "sl2")
def fixed_error_bound(res: SVDQuantFixedResult, sx: ArrayLike, sw: ArrayLike, sxl: ArrayLike,
                      sl2: ArrayLike, spec: SVDQuantFixedSpec) -> ArrayLike:
    """Error (a): float64 (M, N) bound on ``|res.y - T|``, ``T = sum_g sx sw dot_g + sxl sl2
    2**s_m dot_lr`` (module docstring); ``p_lr`` is 0 where the low-rank term is dead."""
    a = _float_array("sx", sx, ndim=2).astype(np.float32).astype(np.float64)
    b = _float_array("sw", sw, ndim=2).astype(np.float32).astype(np.float64)
    m, n = res.acc.shape
    p_lr = np.ldexp(np.outer(_scales("sxl", sxl, m), _scales("sl2", sl2, n)).astype(np.float64),
                    res.shift[:, None])
    p_lr = np.where(res.mant[..., -1] > 0, p_lr, 0.0)
    p = np.concatenate([a[:, None, :] * b[None, :, :], p_lr[..., None]], axis=-1)
    assert spec.dequant is not None
    return terms_error_bound(res.dots, p, spec.dequant)


@array_function("shift", "l2q", "sxl", "sl2")
def requant_error_bound(shift: ArrayLike, l2q: ArrayLike, sxl: ArrayLike,
                        sl2: ArrayLike) -> ArrayLike:
    """Float64 (M, N) bound on ``|sxl sl2 sum_r (u 2**s_m - u32) L2q|``: ``sxl sl2 (2**s_m - 1)
    sum_r |L2q[r, n]|`` (step 4's ``|u 2**s - u32| <= 2**s - 1``, module docstring)."""
    s = np.asarray(shift, np.int64)
    l1 = np.abs(np.asarray(l2q, np.float64)).sum(axis=0)
    per_row = np.asarray(sxl, np.float64) * (np.ldexp(1.0, s) - 1.0)
    return np.outer(per_row, np.asarray(sl2, np.float64) * l1)


def _q_err(s: np.ndarray, bits: int) -> np.ndarray:
    """``e(s) = s (1/2 + qmax 2**-23)``; infinite for subnormal scales (no bound claimed)."""
    e = s.astype(np.float64) * (0.5 + ((1 << (bits - 1)) - 1) * 2.0**-23)
    return np.where(s >= 2.0**-126, e, np.inf)


@array_function("x_hat", "down", "up")
def branch_error_bound(x_hat: ArrayLike, down: ArrayLike, up: ArrayLike,
                       branch_bits: int = 8) -> ArrayLike:
    """Error (b) of the branch: float64 (M, N) bound on ``|sxl sl2 2**s u @ L2q - x_hat down^T
    up^T|`` in exact arithmetic on the float32 inputs (module docstring's three stages)."""
    ops = quantize_branch(x_hat, down, up, branch_bits)
    a = np.abs(_float_array("x_hat", x_hat, ndim=2).astype(np.float32).astype(np.float64))
    d = np.abs(_float_array("down", down, ndim=2).astype(np.float32).astype(np.float64))
    u_f = np.abs(_float_array("up", up, ndim=2).astype(np.float32).astype(np.float64))
    ex, e1, e2 = (_q_err(s, branch_bits) for s in (ops.sxl, ops.sl1, ops.sl2))
    k = a.shape[1]
    d1 = (a.sum(axis=1)[:, None] * e1[None, :] + ex[:, None] * d.sum(axis=1)[None, :]
          + k * ex[:, None] * e1[None, :])  # (M, r)
    u32 = ops.xl.astype(np.int64) @ ops.l1q.astype(np.int64)
    shift, _ = requantize_rows(u32, branch_bits)
    fold = 2.0**-24 * ops.sl1.astype(np.float64)[None, :] * u_f + 2.0**-150  # (N, r)
    d2 = ops.sxl.astype(np.float64)[:, None] * (np.abs(u32) @ (fold.T + e2[None, :]))
    return d1 @ u_f.T + d2 + requant_error_bound(shift, ops.l2q, ops.sxl, ops.sl2)


@dataclass(frozen=True)
class BranchOverhead:
    """MACs and DRAM bytes of one layer's main W4A4 path vs its low-rank branch
    (:func:`branch_overhead`)."""

    main_macs: int
    branch_macs: int
    main_terms: int
    branch_terms: int
    main_code_bytes: int
    main_scale_bytes: int
    out_bytes: int
    branch_act_bytes: int
    branch_weight_bytes: int
    branch_scale_bytes: int
    onchip_u_bytes: int

    @property
    def main_bytes(self) -> int:
        return self.main_code_bytes + self.main_scale_bytes + self.out_bytes

    @property
    def branch_bytes(self) -> int:
        return self.branch_act_bytes + self.branch_weight_bytes + self.branch_scale_bytes

    @property
    def mac_fraction(self) -> float:
        """Branch over main MACs (array cycles: one MAC per PE per cycle for both)."""
        return self.branch_macs / self.main_macs

    @property
    def byte_fraction(self) -> float:
        """Branch over main DRAM bytes, the branch reading its own int-b codes of x."""
        return self.branch_bytes / self.main_bytes

    @property
    def byte_fraction_shared_x(self) -> float:
        """The same when both code widths of x come from one on-chip quantizer."""
        return (self.branch_bytes - self.branch_act_bytes) / self.main_bytes


def branch_overhead(m: int, k: int, n: int, rank: int, group_size: int = 64,
                    branch_bits: int = 8, *, scale_bytes: int = 4,
                    out_bytes: int = 4) -> BranchOverhead:
    """Counts for an (M, K) x (K, N) layer of rank ``rank``, codes packed ``bits/8`` per byte.

    Main: ``M K N`` MACs, ``M N K/gs`` dequantizer terms; reads int4 ``qx``, ``qw`` and scales
    ``sx``, ``sw`` (``scale_bytes`` each), writes ``M N`` outputs (``out_bytes``). Branch:
    ``M K r + M r N`` MACs, ``M N`` extra terms; reads ``xl`` (M, K), ``L1q``, ``L2q`` and
    ``sxl``, ``sl2`` (sl1 is folded into L2q); all 0 at rank 0. Its output bytes are 0: the
    branch lands in the same accumulator, and ``u`` (``onchip_u_bytes``) never leaves the chip.
    """
    for name, v in (("m", m), ("k", k), ("n", n), ("group_size", group_size)):
        _check_int(name, v, 1, 1 << 40)
    _check_int("rank", rank, 0, 1 << 40)
    _check_int("branch_bits", branch_bits, 2, 16)
    if k % group_size:
        raise ValueError(f"group_size={group_size} does not divide K={k}")

    def packed(count: int, bits: int) -> int:
        return (count * bits + 7) // 8

    g, on = k // group_size, int(rank > 0)
    return BranchOverhead(
        main_macs=m * k * n, branch_macs=m * k * rank + m * rank * n,
        main_terms=m * n * g, branch_terms=m * n * on,
        main_code_bytes=packed(m * k, 4) + packed(n * k, 4),
        main_scale_bytes=(m + n) * g * scale_bytes, out_bytes=m * n * out_bytes,
        branch_act_bytes=packed(m * k, branch_bits) * on,
        branch_weight_bytes=packed(k * rank, branch_bits) + packed(rank * n, branch_bits),
        branch_scale_bytes=(m + n) * scale_bytes * on,
        onchip_u_bytes=packed(m * rank, branch_bits))
