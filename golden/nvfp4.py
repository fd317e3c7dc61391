"""NVFP4, bit-exact: E2M1 elements in groups of 16, FP8-E4M3 group scales, a float32 tensor scale.

All float arithmetic is binary32 round-to-nearest-even; ``fl32(.)`` is one such operation. For a
tensor ``x`` (..., K), K a multiple of 16, with per-tensor scale ``t`` and group g::

    t   = global_scale if given, else fl32(amax(x) / 2688)   (2688 = 6 * 448; 1 if amax == 0)
    sg  = e4m3(min(fl32(amax_g / fl32(6 * t)), 448))        RNE, saturating at 448
    eff = fl32(float(sg) * t)
    q   = e2m1(clamp(fl32(x / eff), -6, 6))                 RNE onto +-{0,.5,1,1.5,2,3,4,6}, ties
                                                            to the even code; eff == 0 gives +0
    deq = fl32(e2m1(q) * sg * t)                            one rounding (e2m1 * sg is exact)

Codes are the 4-bit E2M1 patterns held in uint8: bit 3 sign, bits 2..0 the index of the magnitude
in ``E2M1_VALUES`` (a negative x that rounds to 0 keeps its sign bit, as a hardware ``cvt`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .arrays import ArrayLike, array_function
from .svdquant_ops import _float_array

__all__ = [
    "E2M1_VALUES",
    "E4M3_MAX",
    "NVFP4_GROUP",
    "NVFP4Tensor",
    "dequantize_nvfp4",
    "e2m1_decode",
    "nvfp4_gemm",
    "quantize_nvfp4",
]

E2M1_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], np.float32)
"""The eight E2M1 magnitudes; a code's low three bits index this table."""
E4M3_MAX = 448.0
NVFP4_GROUP = 16
_E2M1_MAX = 6.0


@dataclass(frozen=True, eq=False)
class NVFP4Tensor:
    """``codes`` uint8 (..., K) E2M1 patterns, ``scales`` float8_e4m3fn (..., K/16), and the
    float32 ``global_scale``; ``dequantize()`` gives float32 (..., K)."""

    codes: np.ndarray
    scales: np.ndarray
    global_scale: float

    def __post_init__(self) -> None:
        if self.codes.dtype != np.uint8 or (self.codes.size and self.codes.max() > 15):
            raise ValueError(f"codes must be uint8 in 0..15, got {self.codes.dtype}")
        want = (*self.codes.shape[:-1], self.codes.shape[-1] // NVFP4_GROUP)
        if self.codes.ndim < 1 or self.codes.shape[-1] % NVFP4_GROUP or self.scales.shape != want:
            raise ValueError(f"scales has shape {self.scales.shape}, codes {self.codes.shape}: "
                             f"need K % {NVFP4_GROUP} == 0 and scales shape {want}")
        if self.scales.dtype != ml_dtypes.float8_e4m3fn:
            raise ValueError(f"scales must be float8_e4m3fn, got {self.scales.dtype}")
        g = float(np.float32(self.global_scale))
        if not (np.isfinite(g) and g > 0):
            raise ValueError(f"global_scale={self.global_scale!r} must be finite and > 0")

    def dequantize(self) -> np.ndarray:
        return dequantize_nvfp4(self)


@array_function("codes")
def e2m1_decode(codes: ArrayLike) -> ArrayLike:
    """Float32 values of 4-bit E2M1 codes (bit 3 sign, bits 2..0 magnitude index)."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu" or (c.size and (c.min() < 0 or c.max() > 15)):
        raise ValueError(f"codes must be integers in 0..15, got dtype {c.dtype}")
    c = c.astype(np.int64)
    mag = E2M1_VALUES[c & 7]
    return np.where(c & 8, -mag, mag).astype(np.float32)


def _e4m3(x: np.ndarray) -> np.ndarray:
    """RNE of float32 ``x >= 0`` to float8_e4m3fn, saturating at 448 (never NaN)."""
    return np.minimum(x, np.float32(E4M3_MAX)).astype(ml_dtypes.float8_e4m3fn)


@array_function("x")
def quantize_nvfp4(x: ArrayLike, global_scale: float | None = None) -> NVFP4Tensor:
    """NVFP4-quantize ``x`` (..., K) along its last axis (module docstring has the contract).

    ``global_scale`` (float32, > 0) fixes ``t`` (a calibrated activation scale); group scales
    that would exceed 448 then saturate, and their elements clamp at +-6.
    """
    a = _float_array("x", x, min_ndim=1).astype(np.float32)
    k = a.shape[-1]
    if k % NVFP4_GROUP:
        raise ValueError(f"x has K={k} channels, not a multiple of the group size {NVFP4_GROUP}")
    if global_scale is None:
        amax = np.float32(np.abs(a).max()) if a.size else np.float32(0)
        t = amax / np.float32(6 * E4M3_MAX) if amax > 0 else np.float32(1)
        if t == 0:  # amax so small that amax / 2688 underflows: the smallest positive float32
            t = np.nextafter(np.float32(0), np.float32(1))
    else:
        t = np.float32(global_scale)
        if not (np.isfinite(t) and t > 0):
            raise ValueError(f"global_scale={global_scale!r} must be finite and > 0")
    g = a.reshape(*a.shape[:-1], k // NVFP4_GROUP, NVFP4_GROUP)
    ratio = np.abs(g).max(axis=-1) / (np.float32(_E2M1_MAX) * t)
    sg = _e4m3(ratio.astype(np.float32))
    eff = (sg.astype(np.float32) * t).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(eff[..., None] > 0, g / eff[..., None], np.float32(0))
    v = np.clip(v, -_E2M1_MAX, _E2M1_MAX).astype(np.float32)
    codes = v.astype(ml_dtypes.float4_e2m1fn).view(np.uint8) & np.uint8(15)
    return NVFP4Tensor(codes.reshape(a.shape), sg, float(t))


def dequantize_nvfp4(q: NVFP4Tensor) -> np.ndarray:
    """``fl32(e2m1(code) * scale * global_scale)`` per element (float32, one rounding)."""
    k = q.codes.shape[-1]
    vals = e2m1_decode(q.codes).reshape(*q.codes.shape[:-1], k // NVFP4_GROUP, NVFP4_GROUP)
    exact = vals.astype(np.float64) * q.scales.astype(np.float64)[..., None] * q.global_scale
    return exact.astype(np.float32).reshape(q.codes.shape)


def nvfp4_gemm(a: NVFP4Tensor, b: NVFP4Tensor) -> np.ndarray:
    """``y = deq(a) @ deq(b)^T`` as a block-scaled MMA computes it, float32 (M, N).

    ``a`` (M, K), ``b`` (N, K). Per 16-group g: ``dot_g`` = exact sum of E2M1 products (multiples
    of 1/4, |dot_g| <= 576, exact in float32), ``s = fl32(sa*sb)`` (exact: 4-bit mantissas).
    ``acc = 0``; for g ascending ``acc = fl32(acc + s * dot_g)`` (``s * dot_g`` is exact, so a
    fused multiply-add rounds the same); finally ``y = fl32(acc * fl32(ta * tb))``.
    """
    if a.codes.ndim != 2 or b.codes.ndim != 2 or a.codes.shape[1] != b.codes.shape[1]:
        raise ValueError(f"a and b must be (M, K) and (N, K), got {a.codes.shape}, {b.codes.shape}")
    m, k = a.codes.shape
    n, ng = b.codes.shape[0], k // NVFP4_GROUP
    av = e2m1_decode(a.codes).reshape(m, ng, NVFP4_GROUP)
    bv = e2m1_decode(b.codes).reshape(n, ng, NVFP4_GROUP)
    sa, sb = a.scales.astype(np.float32), b.scales.astype(np.float32)
    acc = np.zeros((m, n), np.float32)
    for g in range(ng):
        dot = av[:, g, :] @ bv[:, g, :].T  # partial sums: quarter-integers, |.| <= 576: exact
        acc = acc + (sa[:, g, None] * sb[None, :, g]) * dot
    t = np.float32(np.float32(a.global_scale) * np.float32(b.global_scale))
    return (acc * t).astype(np.float32)
