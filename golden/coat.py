"""COAT FP8 optimizer-state quantization with per-group dynamic range expansion.

Optimizer states are flattened (C order) and cut into groups of ``group_size`` (128) elements;
a short last group is zero-padded (zeros change neither the group's absmax nor its minimum
nonzero magnitude, and the padding is dropped again on dequantization). Per group:

* ``M = max|x|``, ``m = min{|x| : x != 0}``, centre ``c = sqrt(M m)``;
* ``k = floor(log2(F**2 / 2) / log2(M / m) * 16) / 16`` with ``F`` the format max (448 for
  E4M3, 57344 for E5M2), clamped to ``[K_MIN, K_MAX]``;
* ``x' = sign(x) (|x| / c)**k``, ``scale = (M / c)**k / F``, ``code = fp8(x' / scale)``;
* dequantize ``x = sign(q) |q scale|**(1/k) c``.

``k > 1`` stretches a group whose magnitudes span less than the format's range onto all of it,
so the fp8 relative error is divided by ``k`` on the way back. Special groups:

* ``M == m`` (every nonzero magnitude equal): ``log2(M/m) = 0`` and any ``k`` is exact, so
  ``k = 1`` and the codes are ``+-F``;
* all zero: ``k = 1``, ``c = 1``, ``scale = 1``, codes 0;
* very narrow groups (``M/m -> 1``) have ``k`` clamped to ``K_MAX = 64``; absurdly wide ones
  (only reachable with float32 subnormals) to ``K_MIN = 1/16`` so ``k`` is never 0.

Statistics and powers are computed in float64; ``scale``, ``k`` and ``c`` are stored as float32
and the codes are computed from the stored float32 values, so quantize and dequantize agree.
``quantize_per_group`` is the plain per-group FP8 baseline (``scale = M / F``) on the same
groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fp8 import fp8_format, fp8_round

__all__ = [
    "K_MAX",
    "K_MIN",
    "ExpandedFp8",
    "GroupFp8",
    "dequantize_per_group",
    "expand_dequantize",
    "expand_quantize",
    "quantize_per_group",
    "relative_error",
    "synthetic_moments",
]

K_MAX = 64.0
K_MIN = 1.0 / 16.0


@dataclass(frozen=True)
class ExpandedFp8:
    """A COAT range-expanded FP8 tensor.

    ``codes``: fp8 (``ml_dtypes``) array of the input's shape, carrying ``sign(x)`` in its sign
    bit. ``scale``, ``k``, ``centre``: float32 arrays of shape ``(n_groups,)``.
    """

    codes: np.ndarray
    scale: np.ndarray
    k: np.ndarray
    centre: np.ndarray
    group_size: int
    fmt: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    @property
    def sign(self) -> np.ndarray:
        """int8 sign of each element (-1, 0, 1): the sign bit of the code (0 for zero codes)."""
        return np.sign(self.codes.astype(np.float32)).astype(np.int8)


@dataclass(frozen=True)
class GroupFp8:
    """Plain per-group FP8: ``x ~= codes * scale[group]``; ``scale`` float32 ``(n_groups,)``."""

    codes: np.ndarray
    scale: np.ndarray
    group_size: int
    fmt: str


def _check_group_size(group_size: int) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if group_size <= 0:
        raise ValueError(f"group_size must be a positive integer, got {group_size}")
    return int(group_size)


def _grouped(x: np.ndarray, group_size: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Finite float32 ``x`` flattened, zero-padded and reshaped to ``(n_groups, group_size)``."""
    try:
        arr = np.asarray(x).astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"x must be a real numeric array: {exc}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"x holds a non-finite value ({arr[~np.isfinite(arr)].flat[0]})")
    flat = arr.reshape(-1).astype(np.float64)
    n_groups = -(-flat.size // group_size)
    padded = np.zeros(n_groups * group_size, dtype=np.float64)
    padded[: flat.size] = flat
    return padded.reshape(n_groups, group_size), arr.shape


def _ungroup(grouped: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64))
    return grouped.reshape(-1)[:size].reshape(shape)


def _expansion(absmax: np.ndarray, minnz: np.ndarray, fmax: float):
    """Per-group float32 ``(k, c, scale)`` from float64 ``M`` and ``m`` (see module doc)."""
    nonzero = absmax > 0
    spread = nonzero & (absmax > minnz)
    ratio = np.where(spread, absmax / np.where(spread, minnz, 1.0), 2.0)
    k_raw = np.floor(np.log2(fmax * fmax / 2.0) / np.log2(ratio) * 16.0) / 16.0
    k = np.where(spread, np.clip(k_raw, K_MIN, K_MAX), 1.0).astype(np.float32)
    c = np.where(nonzero, np.sqrt(absmax * np.where(nonzero, minnz, 1.0)), 1.0)
    c = c.astype(np.float32)
    c64 = c.astype(np.float64)
    big = np.where(nonzero, absmax / c64, 1.0) ** k.astype(np.float64)
    scale = np.where(nonzero, big / fmax, 1.0).astype(np.float32)
    return k, c, scale


@array_function("x")
def expand_quantize(x: ArrayLike, group_size: int = 128, fmt: str = "e4m3") -> ExpandedFp8:
    """COAT dynamic-range-expanded FP8 quantization of ``x`` in flattened groups.

    Returns the codes (fp8, shape of ``x``) and per-group float32 ``scale``, ``k``, ``centre``.
    """
    f = fp8_format(fmt)
    g = _check_group_size(group_size)
    grouped, shape = _grouped(x, g)
    mag = np.abs(grouped)
    absmax = mag.max(axis=1) if grouped.size else np.zeros(0)
    minnz = np.where(mag > 0, mag, np.inf).min(axis=1) if grouped.size else np.zeros(0)
    k, c, scale = _expansion(absmax, minnz, f.max)
    k64, c64, s64 = (a.astype(np.float64)[:, None] for a in (k, c, scale))
    expanded = np.sign(grouped) * (mag / c64) ** k64
    codes = fp8_round(_ungroup(expanded / s64, shape), f)
    return ExpandedFp8(codes, scale, k, c, g, f.name)


def expand_dequantize(q: ExpandedFp8) -> np.ndarray:
    """float32 ``sign(q) |q scale|**(1/k) c`` per group."""
    vals, shape = _grouped(q.codes.astype(np.float32), q.group_size)
    k64, c64, s64 = (a.astype(np.float64)[:, None] for a in (q.k, q.centre, q.scale))
    out = np.sign(vals) * np.abs(vals * s64) ** (1.0 / k64) * c64
    return _ungroup(out, shape).astype(np.float32)


@array_function("x")
def quantize_per_group(x: ArrayLike, group_size: int = 128, fmt: str = "e4m3") -> GroupFp8:
    """Plain per-group FP8 on the same flattened groups: ``scale = M / F`` (1 if all zero)."""
    f = fp8_format(fmt)
    g = _check_group_size(group_size)
    grouped, shape = _grouped(x, g)
    absmax = np.abs(grouped).max(axis=1) if grouped.size else np.zeros(0)
    scale = np.where(absmax > 0, absmax / f.max, 1.0).astype(np.float32)
    codes = fp8_round(_ungroup(grouped / scale.astype(np.float64)[:, None], shape), f)
    return GroupFp8(codes, scale, g, f.name)


def dequantize_per_group(q: GroupFp8) -> np.ndarray:
    """float32 ``codes * scale[group]``."""
    vals, shape = _grouped(q.codes.astype(np.float32), q.group_size)
    return _ungroup(vals * q.scale.astype(np.float64)[:, None], shape).astype(np.float32)


@array_function("x", "x_hat")
def relative_error(x: ArrayLike, x_hat: ArrayLike) -> float:
    """``||x - x_hat||_2 / ||x||_2`` in float64 (0 when both are zero)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(x_hat, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"x_hat shape {b.shape} differs from x shape {a.shape}")
    den = float(np.linalg.norm(a))
    num = float(np.linalg.norm(a - b))
    return 0.0 if den == 0.0 and num == 0.0 else num / den


def synthetic_moments(
    n: int, moment: int = 1, group_size: int = 128, seed: int = 0, decades: float | None = None
) -> np.ndarray:
    """Seeded float32 Adam-state-like data whose per-group range is far narrower than FP8's.

    Each group gets a log-uniform base magnitude (first moment 1e-6..1e-3, second 1e-12..1e-8);
    within a group magnitudes are log-uniform over ``decades`` (first: 3, i.e. ~1e3; second: 1,
    ~1e1). First moments carry random signs, second moments are positive.
    """
    if moment not in (1, 2):
        raise ValueError(f"moment must be 1 or 2, got {moment!r}")
    g = _check_group_size(group_size)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    span = (3.0 if moment == 1 else 1.0) if decades is None else float(decades)
    lo, hi = (-6.0, -3.0) if moment == 1 else (-12.0, -8.0)
    n_groups = -(-n // g)
    base = 10.0 ** rng.uniform(lo, hi, size=(n_groups, 1))
    mag = base * 10.0 ** (-span * rng.uniform(0.0, 1.0, size=(n_groups, g)))
    if moment == 1:
        mag = mag * rng.choice(np.array([-1.0, 1.0]), size=mag.shape)
    return mag.reshape(-1)[:n].astype(np.float32)
