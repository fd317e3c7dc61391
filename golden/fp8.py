"""FP8 rounding and scaled FP8 activation quantization (COAT's activation path).

Formats (OCP FP8, as implemented by ``ml_dtypes``):

* ``"e4m3"``: ``float8_e4m3fn``, 4 exponent / 3 mantissa bits, no infinities, max 448,
  smallest subnormal 2**-9. COAT uses it for forward activations and optimizer states.
* ``"e5m2"``: ``float8_e5m2``, 5 / 2 bits, IEEE-like with infinities, max 57344, smallest
  subnormal 2**-16. COAT uses it for backward gradients.

Rounding is round-to-nearest-even of the float32 value (the ``ml_dtypes`` cast). Out of range
values either saturate to ``+-max`` (``overflow="saturate"``, the default and what scaled
quantization needs) or raise ``ValueError`` (``overflow="raise"``). NaN/Inf inputs always raise.

Scaled quantization: ``scale = absmax / fmt_max`` (1.0 when the block is all zero),
``code = fp8(x / scale)``, ``x ~= float(code) * scale``. Per tensor (one scale, COAT's linear-layer
inputs) or per group of ``group_size`` consecutive elements along the last axis (COAT's 1 x 16
groups for non-linear layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ml_dtypes
import numpy as np

from .arrays import ArrayLike, array_function

__all__ = [
    "FORMATS",
    "Fp8Format",
    "Fp8Quantized",
    "dequantize",
    "fp8_format",
    "fp8_round",
    "quantize_per_group",
    "quantize_per_tensor",
]


@dataclass(frozen=True)
class Fp8Format:
    """One FP8 format: its name, ``ml_dtypes`` dtype and largest finite value."""

    name: str
    dtype: type
    max: float

    @property
    def min_subnormal(self) -> float:
        return float(ml_dtypes.finfo(self.dtype).smallest_subnormal)


FORMATS: dict[str, Fp8Format] = {
    "e4m3": Fp8Format("e4m3", ml_dtypes.float8_e4m3fn, 448.0),
    "e5m2": Fp8Format("e5m2", ml_dtypes.float8_e5m2, 57344.0),
}


def fp8_format(fmt: str | Fp8Format) -> Fp8Format:
    """Look up ``"e4m3"`` / ``"e5m2"`` (or pass an :class:`Fp8Format` through)."""
    if isinstance(fmt, Fp8Format):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}: expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _finite_float32(name: str, x: np.ndarray | float) -> np.ndarray:
    """``x`` as a float32 array; ``ValueError`` naming ``name`` if it holds NaN or Inf."""
    try:
        arr = np.asarray(x).astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from exc
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].flat[0]
        raise ValueError(f"{name} holds a non-finite value ({bad})")
    return arr


@array_function("x")
def fp8_round(
    x: ArrayLike | float,
    fmt: str | Fp8Format = "e4m3",
    overflow: Literal["saturate", "raise"] = "saturate",
) -> ArrayLike:
    """Round ``x`` (as float32) to the nearest ``fmt`` value, ties to even; returns fp8 codes
    (``ml_dtypes`` arrays, or ``torch.float8_*`` tensors for tensor input).

    Any ``|x| > max`` saturates to ``+-max`` (default) or raises ``ValueError``
    (``overflow="raise"``; strict: even values RNE would round down to ``max`` raise).
    """
    f = fp8_format(fmt)
    arr = _finite_float32("x", x)
    if overflow == "saturate":
        arr = np.clip(arr, -f.max, f.max)
    elif overflow == "raise":
        if arr.size and float(np.max(np.abs(arr))) > f.max:
            raise ValueError(
                f"x holds {float(np.max(np.abs(arr)))} beyond the {f.name} max {f.max}"
            )
    else:
        raise ValueError(f"unknown overflow {overflow!r}: expected 'saturate' or 'raise'")
    return arr.astype(f.dtype)


@dataclass(frozen=True)
class Fp8Quantized:
    """Scaled FP8 tensor: ``x ~= codes * scales`` (scales broadcast over each group).

    ``codes`` has the input's shape (fp8 dtype). ``scales`` is float32: shape ``()`` for per
    tensor, ``(..., L // group_size)`` for per group along the last axis.
    """

    codes: np.ndarray
    scales: np.ndarray
    fmt: str
    group_size: int | None = None


def _scale_of(absmax: np.ndarray, fmax: float) -> np.ndarray:
    """``absmax / fmax`` in float32, 1.0 where the block is all zero."""
    absmax = np.asarray(absmax, dtype=np.float32)
    return np.where(absmax > 0, absmax / np.float32(fmax), np.float32(1.0)).astype(np.float32)


@array_function("x")
def quantize_per_tensor(x: ArrayLike, fmt: str | Fp8Format = "e4m3") -> Fp8Quantized:
    """One scale for the whole tensor: ``scale = absmax / fmt_max``, codes ``fp8(x / scale)``."""
    f = fp8_format(fmt)
    arr = _finite_float32("x", x)
    absmax = np.max(np.abs(arr)) if arr.size else np.float32(0.0)
    scale = _scale_of(absmax, f.max)
    codes = fp8_round(arr / scale, f)
    return Fp8Quantized(codes, scale, f.name, None)


@array_function("x")
def quantize_per_group(
    x: ArrayLike, group_size: int = 16, fmt: str | Fp8Format = "e4m3"
) -> Fp8Quantized:
    """One scale per ``group_size`` consecutive elements of the last axis (COAT: 1 x 16).

    The last axis must be a multiple of ``group_size`` (no padding: activations tiles are).
    """
    f = fp8_format(fmt)
    arr = _finite_float32("x", x)
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if group_size <= 0:
        raise ValueError(f"group_size must be a positive integer, got {group_size}")
    if arr.ndim == 0:
        raise ValueError(f"x must have at least one axis, got shape {arr.shape}")
    last = arr.shape[-1]
    if last % group_size:
        raise ValueError(
            f"group_size {group_size} does not divide the last axis of x (shape {arr.shape})"
        )
    grouped = arr.reshape(*arr.shape[:-1], last // group_size, group_size)
    scales = _scale_of(np.max(np.abs(grouped), axis=-1), f.max)
    codes = fp8_round(grouped / scales[..., None], f).reshape(arr.shape)
    return Fp8Quantized(codes, scales, f.name, int(group_size))


def dequantize(q: Fp8Quantized) -> np.ndarray:
    """float32 ``codes * scales`` (group scales repeated along the last axis)."""
    vals = q.codes.astype(np.float32)
    if q.group_size is None:
        return vals * np.float32(q.scales)
    shape = vals.shape
    grouped = vals.reshape(*shape[:-1], shape[-1] // q.group_size, q.group_size)
    return (grouped * q.scales[..., None]).reshape(shape).astype(np.float32)
