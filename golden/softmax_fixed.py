"""Bit-exact fixed-point softmax (base-2 exponent, small 2^f table, integer reciprocal).

Row-wise over the last axis of integer logits ``x`` with ``in_frac_bits`` fractional bits
(value ``x / 2**Fi``). With ``c = SoftmaxFixedConfig`` and all shifts round-half-up
(:func:`golden.fixed_point.round_shift_right`)::

    d   = x - max(x)                                   <= 0, exact
    L   = round(log2(e) * 2**c.log2e_bits)             constant
    t   = round_shift_right(d * L, Fi + Lb - Ft)       d * log2(e), Ft = c.t_frac_bits bits
    n   = t >> Ft          (floor, <= 0)               integer part
    f   = t - (n << Ft)    in [0, 2**Ft)               fractional part
    i   = f >> (Ft - Tb);  r = f mod 2**(Ft - Tb)      table index (2**Tb entries) and remainder
    T[j] = round(2**(j / 2**Tb) * 2**P)  j = 0..2**Tb  table, P = c.exp_bits
    y   = T[i] + round_shift_right((T[i+1] - T[i]) * r, Ft - Tb)   (interpolate) or T[i]
    e   = round_shift_right(y, min(-n, P + 2))         2**(d log2 e) with P fractional bits
    S   = sum(e)                                       >= 2**P (the max element has e = 2**P)
    R   = reciprocal(S, P + O)                         round(2**(P+O) / S), O = c.out_frac_bits
    p   = round_shift_right(e * R, P)                  probability with O fractional bits

Error bound (:meth:`SoftmaxFixedConfig.error_bound`), for a row of ``n`` elements, against the
exact softmax of the fixed-point logit values. Each ``e_i = e*_i (1 + rho_i) + a_i`` with
``|rho_i| <= rho = eps_table + ln2 * 2**-(Ft+1)`` (interpolation error
``(h^2 / 8) ln2^2 2**h``, ``h = 2**-Tb``, or ``2**h - 1`` without interpolation) and
``|a_i| <= a = 1.5 * 2**-P + ln2 * 2**-(Lb+1) / e`` (table, product and shift rounding; the
``log2 e`` rounding gives ``e*_i * ln2 * |d_i| * 2**-(Lb+1) <= ln2 * 2**-(Lb+1) / e`` since
``|d| exp(-|d|) <= 1/e``). With ``S, S* >= 1``::

    |p_i - p*_i| <= (2 rho + (n + 1) a) (1 + rho + n a) + 2**-O

(last term: reciprocal plus output rounding, half an output LSB each). The bound is worst-case;
measured errors are several times smaller (see ``tests/golden/test_softmax_fixed.py``).
Accumulator widths: ``e <= 2**P`` so ``S < n * 2**P + 1``; ``e * R <= 2**(P+O)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import reciprocal, round_shift_right

__all__ = [
    "SoftmaxFixedConfig",
    "exp2_neg",
    "exp2_table",
    "exp_neg",
    "softmax_fixed",
    "softmax_fixed_float",
]


@dataclass(frozen=True)
class SoftmaxFixedConfig:
    """Bit widths of the fixed-point softmax; defaults: 32-entry interpolated table."""

    in_frac_bits: int = 8
    log2e_bits: int = 16
    t_frac_bits: int = 16
    table_bits: int = 5
    exp_bits: int = 16
    out_frac_bits: int = 15
    interpolate: bool = True

    def __post_init__(self) -> None:
        for name, lo, hi in (("in_frac_bits", 0, 24), ("log2e_bits", 4, 24),
                             ("t_frac_bits", 1, 24), ("table_bits", 1, 10),
                             ("exp_bits", 4, 24), ("out_frac_bits", 1, 24)):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or not lo <= val <= hi:
                raise ValueError(f"{name} must be an int in {lo}..{hi}, got {val!r}")
        if self.table_bits > self.t_frac_bits:
            raise ValueError(f"table_bits ({self.table_bits}) must be <= t_frac_bits "
                             f"({self.t_frac_bits})")
        if self.in_frac_bits + self.log2e_bits < self.t_frac_bits:
            raise ValueError(f"in_frac_bits + log2e_bits ({self.in_frac_bits + self.log2e_bits})"
                             f" must be >= t_frac_bits ({self.t_frac_bits})")

    @property
    def log2e_code(self) -> int:
        return int(round(math.log2(math.e) * (1 << self.log2e_bits)))

    @property
    def exp_rel_error(self) -> float:
        """``rho = eps_table + ln2 * 2**-(Ft+1)``: relative error bound of ``e`` (module
        docstring)."""
        h = 2.0 ** -self.table_bits
        ln2 = math.log(2.0)
        eps = h * h / 8 * ln2 * ln2 * 2 ** h if self.interpolate else 2 ** h - 1
        return eps + ln2 * 2.0 ** -(self.t_frac_bits + 1)

    @property
    def exp_abs_error(self) -> float:
        """``a = 1.5 * 2**-P + ln2 * 2**-(Lb+1) / e``: absolute error bound of ``e / 2**P``."""
        return 1.5 * 2.0 ** -self.exp_bits + math.log(2.0) * 2.0 ** -(self.log2e_bits + 1) / math.e

    def error_bound(self, n: int) -> float:
        """Worst-case ``|p - softmax|`` for a row of ``n`` elements (module docstring)."""
        rho, a = self.exp_rel_error, self.exp_abs_error
        return (2 * rho + (n + 1) * a) * (1 + rho + n * a) + 2.0 ** -self.out_frac_bits


def exp2_table(cfg: SoftmaxFixedConfig) -> np.ndarray:
    """``T[j] = round(2**(j / 2**Tb) * 2**P)`` for ``j = 0..2**Tb`` (the last entry is 2**(P+1))."""
    j = np.arange((1 << cfg.table_bits) + 1, dtype=np.float64)
    return np.floor(2.0 ** (j / (1 << cfg.table_bits)) * (1 << cfg.exp_bits) + 0.5).astype(np.int64)


def _exp2_neg(t: np.ndarray, cfg: SoftmaxFixedConfig) -> np.ndarray:
    """:func:`exp2_neg` on a checked int64 array."""
    ft, tb, p = cfg.t_frac_bits, cfg.table_bits, cfg.exp_bits
    table = exp2_table(cfg)
    n = t >> ft
    f = t - (n << ft)
    idx = f >> (ft - tb)
    y = table[idx]
    if cfg.interpolate:
        r = f & ((1 << (ft - tb)) - 1)
        y = y + round_shift_right((table[idx + 1] - table[idx]) * r, ft - tb)
    shift = np.minimum(-n, p + 2)
    e = np.empty_like(y)
    for s in np.unique(shift):
        sel = shift == s
        e[sel] = round_shift_right(y[sel], int(s))
    return e


def _nonpositive(name: str, x: ArrayLike, lo: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (int(arr.max()) > 0 or int(arr.min()) < lo):
        bad = int(arr.max()) if int(arr.max()) > 0 else int(arr.min())
        raise ValueError(f"{name} holds {bad}, outside [{lo}, 0]")
    return arr


@array_function("t")
def exp2_neg(t: ArrayLike, cfg: SoftmaxFixedConfig | None = None) -> ArrayLike:
    """``e ~= 2**(t / 2**Ft) * 2**P`` for integers ``t <= 0`` (int64): the steps n, f, i, r,
    y, e of the module docstring (``e = 2**P`` exactly at ``t = 0``, ``0 <= e <= 2**P``)."""
    cfg = cfg or SoftmaxFixedConfig()
    return _exp2_neg(_nonpositive("t", t, -(1 << 63)), cfg)


@array_function("d")
def exp_neg(d: ArrayLike, cfg: SoftmaxFixedConfig | None = None) -> ArrayLike:
    """``e ~= exp(d / 2**Fi) * 2**P`` for integer logit differences ``-2**33 <= d <= 0``:
    ``t = round_shift_right(d * L, Fi + Lb - Ft)``, then :func:`exp2_neg`. Error:
    ``e / 2**P = exp(d / 2**Fi) (1 + rho_i) + a_i``, ``|rho_i| <= cfg.exp_rel_error``,
    ``|a_i| <= cfg.exp_abs_error`` (module docstring)."""
    cfg = cfg or SoftmaxFixedConfig()
    d = _nonpositive("d", d, -(1 << 33))
    return _exp2_neg(_exp_argument(d, cfg), cfg)


def _exp_argument(d: np.ndarray, cfg: SoftmaxFixedConfig) -> np.ndarray:
    """``t = round_shift_right(d * L, Fi + Lb - Ft)`` (``d * log2 e`` with ``Ft`` bits)."""
    return round_shift_right(d * cfg.log2e_code,
                             cfg.in_frac_bits + cfg.log2e_bits - cfg.t_frac_bits)


@array_function("x")
def softmax_fixed(x: ArrayLike, cfg: SoftmaxFixedConfig | None = None) -> ArrayLike:
    """Fixed-point softmax over the last axis: int64 probabilities with ``out_frac_bits`` bits.

    ``x`` must hold integers within int32 (logits with ``cfg.in_frac_bits`` fractional bits).
    """
    cfg = cfg or SoftmaxFixedConfig()
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"x must hold integers (fixed-point logits), got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.shape[-1] < 1:
        raise ValueError(f"x must have a non-empty last axis, got shape {arr.shape}")
    arr = arr.astype(np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < -(1 << 31) or hi >= 1 << 31:
        bad = lo if lo < -(1 << 31) else hi
        raise ValueError(f"x holds {bad}, outside the int32 range of the logit input")
    e = exp_neg(arr - arr.max(axis=-1, keepdims=True), cfg)
    s = e.sum(axis=-1, keepdims=True)
    r = reciprocal(s, cfg.exp_bits + cfg.out_frac_bits)
    return round_shift_right(e * r, cfg.exp_bits)


@array_function("x")
def softmax_fixed_float(x: ArrayLike, cfg: SoftmaxFixedConfig | None = None) -> ArrayLike:
    """:func:`softmax_fixed` output as float64 probabilities (``p / 2**out_frac_bits``)."""
    cfg = cfg or SoftmaxFixedConfig()
    return softmax_fixed(x, cfg).astype(np.float64) / float(1 << cfg.out_frac_bits)
