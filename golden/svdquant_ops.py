"""SVDQuant arithmetic, bit-exact: INT4 group quantization and the group-scaled W4A4 GEMM.

Every float operation below is IEEE-754 binary32 with round-to-nearest-even (RNE) unless a line
says otherwise; ``fl32(.)`` means "the binary32 result of that one operation". These are the
contracts that Triton kernels (``sw``) and RTL (``sim``) are held to:

* :func:`quantize_int4` - ``s = fl32(absmax / qmax)`` per group (optionally RNE to a 16-bit
  ``scale_dtype``), ``q = clamp(rint(fl32(x / s)), qmin, qmax)`` with ``rint`` ties-to-even.
  This is exactly ``(x / s).round().clamp(qmin, qmax)`` in float32 PyTorch. A Triton kernel on a
  GPU must divide with ``tl.math.div_rn``: its ``/`` is ``div.full.f32`` (up to 2 ulp off).
* :func:`w4a4_gemm` - exact integer dot per group, then a float32 scale-accumulate in ascending
  group order, with (``fma=True``) or without (``fma=False``, default) a fused multiply-add.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from .arrays import ArrayLike, array_function

__all__ = [
    "GELU_SHIFT",
    "dequantize_int4",
    "fma_f32",
    "fold_act_shift",
    "quantize_int4",
    "w4a4_gemm",
]

GELU_SHIFT = 0.171875
"""Added to post-GELU activations (min GELU ~ -0.16997) before unsigned quantization; = 11/64."""

_SCALE_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


# --------------------------------------------------------------------------- input checking


def _float_array(name: str, x: Any, ndim: int | None = None, min_ndim: int = 0) -> np.ndarray:
    """``x`` as finite float64 (exact for every float32/16-bit input), or ``ValueError``."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiub" and a.dtype != ml_dtypes.bfloat16:
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if (ndim is not None and a.ndim != ndim) or a.ndim < min_ndim:
        want = f"{ndim}-D" if ndim is not None else f"at least {min_ndim}-D"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} holds {a[idx]} at index {idx}; inputs must be finite")
    return a


def _int_array(name: str, x: Any, lo: int, hi: int, ndim: int) -> np.ndarray:
    """``x`` as int64 after checking integer dtype, rank and the range ``lo..hi``."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and (a.min() < lo or a.max() > hi):
        bad = int(a.min()) if a.min() < lo else int(a.max())
        raise ValueError(f"{name} holds {bad}, outside {lo}..{hi}")
    return a


def _check_group_size(group_size: Any, k: int, name: str = "group_size") -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer):
        raise ValueError(f"{name} must be an int, got {group_size!r}")
    if group_size <= 0 or k % group_size:
        raise ValueError(f"{name}={group_size} does not divide K={k}")
    return int(group_size)


def _scale_dtype(scale_dtype: str) -> Any:
    if scale_dtype not in _SCALE_DTYPES:
        raise ValueError(
            f"scale_dtype={scale_dtype!r} unknown; expected one of {list(_SCALE_DTYPES)}"
        )
    return _SCALE_DTYPES[scale_dtype]


# --------------------------------------------------------------------------- quantization


@array_function("x")
def quantize_int4(
    x: ArrayLike, group_size: int = 64, signed: bool = True, scale_dtype: str = "float32"
) -> tuple[ArrayLike, ArrayLike]:
    """Symmetric INT4 quantization per row and per ``group_size`` group of the last axis.

    ``x`` (..., K) is taken as float32. Per group: ``s = fl32(absmax / qmax)`` (qmax 7 signed,
    15 unsigned), RNE to ``scale_dtype``; a zero ``s`` (all-zero group, or 16-bit underflow)
    becomes 1 so nothing is divided by zero; ``q = clamp(rint(fl32(x / s)), qmin, qmax)``.
    Signed codes are -8..7 (``-8`` only arises from subnormal scales: otherwise ``|x / s| < 7.5``),
    unsigned 0..15 and negative input is an error. Guarantee for ``scale_dtype="float32"`` and
    normal (>= 2**-126) scales: ``|x - q*s| <= s/2 (1 + 2**-20)``.
    Returns ``(codes int8 (..., K), scales float32 (..., K/group_size))``.
    """
    a = _float_array("x", x, min_ndim=1).astype(np.float32)
    k = a.shape[-1]
    gs = _check_group_size(group_size, k)
    sdt = _scale_dtype(scale_dtype)
    qmin, qmax = (-8, 7) if signed else (0, 15)
    if not signed and a.size and a.min() < 0:
        raise ValueError(f"x holds {a.min()} < 0; unsigned quantization (signed=False) needs "
                         "x >= 0")
    g = a.reshape(*a.shape[:-1], k // gs, gs)
    absmax = np.abs(g).max(axis=-1)
    with np.errstate(over="ignore"):
        scale = (absmax / np.float32(qmax)).astype(sdt).astype(np.float32)
    if np.isinf(scale).any():
        raise ValueError(f"x absmax {absmax.max()} overflows scale_dtype={scale_dtype!r}")
    scale = np.where(scale == 0, np.float32(1), scale)
    codes = np.clip(np.rint(g / scale[..., None]), qmin, qmax).astype(np.int8)
    return codes.reshape(a.shape), scale


@array_function("codes", "scales")
def dequantize_int4(codes: ArrayLike, scales: ArrayLike, group_size: int = 64) -> ArrayLike:
    """``codes * scales`` broadcast over each group, exact in float64 (no rounding)."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu" or c.ndim < 1:
        raise ValueError(f"codes must be an integer array of rank >= 1, got {c.dtype} {c.shape}")
    c = _int_array("codes", c, -8, 15, c.ndim)
    k = c.shape[-1]
    gs = _check_group_size(group_size, k)
    s = _float_array("scales", scales)
    if s.shape != (*c.shape[:-1], k // gs):
        raise ValueError(f"scales has shape {s.shape}, expected {(*c.shape[:-1], k // gs)}")
    g = c.reshape(*c.shape[:-1], k // gs, gs).astype(np.float64) * s[..., None]
    return g.reshape(c.shape)


@array_function("bias", "weight", "shift")
def fold_act_shift(bias: ArrayLike, weight: ArrayLike, shift: ArrayLike | float) -> ArrayLike:
    """Bias that cancels a constant input shift: ``bias - weight @ shift`` (float64).

    For any x: ``(x + shift) @ weight.T + fold = x @ weight.T + bias`` in exact arithmetic.
    ``weight`` (N, K) is the weight the shifted input meets, ``shift`` a scalar or (K,) vector.
    """
    w = _float_array("weight", weight, ndim=2)
    b = _float_array("bias", bias, ndim=1)
    sh = _float_array("shift", shift)
    if sh.shape not in ((), (w.shape[1],)):
        raise ValueError(f"shift has shape {sh.shape}, expected () or ({w.shape[1]},)")
    sh = np.broadcast_to(sh, (w.shape[1],))
    if b.shape != (w.shape[0],):
        raise ValueError(f"bias has shape {b.shape}, expected ({w.shape[0]},)")
    return b - w @ sh


# --------------------------------------------------------------------------- W4A4 GEMM


@array_function("a", "b", "c")
def fma_f32(a: ArrayLike | float, b: ArrayLike | float, c: ArrayLike | float) -> ArrayLike:
    """``fl32(a * b + c)`` with ONE rounding (a binary32 fused multiply-add), elementwise.

    ``a*b`` of two binary32 values is exact in float64; TwoSum splits ``a*b + c`` into
    ``hi + lo`` exactly. Casting ``hi`` to binary32 is then correctly rounded unless ``hi`` is a
    binary32 midpoint and ``lo != 0``, where the sign of ``lo`` picks the neighbour.
    """
    a64, b64, c64 = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p = a64 * b64
    hi = p + c64
    bb = hi - p
    lo = (p - (hi - bb)) + (c64 - bb)
    r = hi.astype(np.float32)
    r64 = r.astype(np.float64)
    nb = np.nextafter(r, np.where(hi > r64, np.float32(np.inf), np.float32(-np.inf)))
    nb64 = nb.astype(np.float64)
    tie = (hi != r64) & ((r64 + nb64) * 0.5 == hi) & (lo != 0)
    return np.where(tie & ((lo > 0) == (nb64 > r64)), nb, r).astype(np.float32)


@array_function("qx", "sx", "qw", "sw")
def w4a4_gemm(
    qx: ArrayLike,
    sx: ArrayLike,
    qw: ArrayLike,
    sw: ArrayLike,
    group_size: int = 64,
    *,
    act_signed: bool = True,
    fma: bool = False,
) -> ArrayLike:
    """Group-scaled INT4 GEMM: ``y[m, n] = sum_g sx[m, g] * sw[n, g] * dot_g[m, n]`` (float32).

    ``qx`` (M, K) holds -8..7 (``act_signed``) or 0..15, ``qw`` (N, K) -8..7, scales (M, K/g) and
    (N, K/g) are taken as float32. ``dot_g`` is the exact int64 dot over group g (converted to
    float32 exactly). Then, in float32, ``acc = 0`` and for g = 0, 1, ... in order:
    ``s = fl32(sx*sw)``; ``acc = fl32(acc + fl32(s * dot_g))`` (``fma=False``: the Triton
    interpreter, or a kernel compiled with ``enable_fp_fusion=False``) or
    ``acc = fma_f32(s, dot_g, acc)`` (``fma=True``: compiled Triton's default contraction).
    """
    lo = -8 if act_signed else 0
    hi = 7 if act_signed else 15
    x = _int_array("qx", qx, lo, hi, 2)
    w = _int_array("qw", qw, -8, 7, 2)
    (m, k), n = x.shape, w.shape[0]
    if w.shape[1] != k:
        raise ValueError(f"qw has K={w.shape[1]} columns, qx has K={k}")
    gs = _check_group_size(group_size, k)
    ng = k // gs
    if gs * 120 >= 1 << 24:
        raise ValueError(f"group_size={gs} too large: a group dot would not be exact in float32")
    sx32 = _float_array("sx", sx, ndim=2).astype(np.float32)
    sw32 = _float_array("sw", sw, ndim=2).astype(np.float32)
    if sx32.shape != (m, ng):
        raise ValueError(f"sx has shape {sx32.shape}, expected {(m, ng)}")
    if sw32.shape != (n, ng):
        raise ValueError(f"sw has shape {sw32.shape}, expected {(n, ng)}")
    # Integer-valued float32 BLAS is exact here, in any order: every partial sum of a group dot
    # is an integer of magnitude <= 120 * group_size < 2**24.
    xg = x.reshape(m, ng, gs).astype(np.float32)
    wg = w.reshape(n, ng, gs).astype(np.float32)
    acc = np.zeros((m, n), np.float32)
    for g in range(ng):
        dot = xg[:, g, :] @ wg[:, g, :].T
        s = sx32[:, g, None] * sw32[None, :, g]
        acc = fma_f32(s, dot, acc) if fma else acc + s * dot
    if not np.isfinite(acc).all():
        raise ValueError("w4a4_gemm result overflows float32; check the scales sx and sw")
    return acc
