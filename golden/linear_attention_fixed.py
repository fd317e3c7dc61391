"""Bit-exact fixed-point model of Sana ReLU linear attention (the hardware datapath).

After per-tensor symmetric int8 quantization (``x ~= s * code``, codes in -127..127; the integer
core accepts the full int8 range), per (batch, head) with ``kr = max(kc, 0)``,
``qr = max(qc, 0)``::

    VK[e, j] = sum_n vc[n, e] kr[n, j]       KS[j] = sum_n kr[n, j]          (stage 1)
    num[i, e] = sum_j VK[e, j] qr[i, j]      den[i] = sum_j KS[j] qr[i, j]   (stage 2)
    o[i, e] = num / den                      (stage 3, in units of v codes)

``s_q`` and ``s_k`` cancel, so the float output is ``o * s_v``. Stage 3 divides through a
normalized reciprocal (a plain ``2**F / den`` would vanish for the ~2**37 denominators of
N = 1024), the shared normalizer :func:`normalize`: with ``R = den_bits``,
``F = recip_frac_bits``, ``Fo = out_frac_bits``::

    sh    = max(bitlen(den) - R, 0)            leading-one detect
    den_n = round_shift_right(den, sh)         in [2**(R-1), 2**R] when sh > 0, else den
    num_n = round_shift_right(num, sh)
    rcp   = reciprocal(den_n, F + R)           1/(den_n / 2**R) with F fractional bits, in [1, 2]
    out   = saturate(round_shift_right(num_n * rcp, F + R - Fo), 8 + Fo)

``out`` is a signed (8 + Fo)-bit fixed-point value of ``o`` with Fo fractional bits (int16 at
the default Fo = 8); float decode ``out * s_v / 2**Fo``. Denominator 0 happens only when every
weight ``kr[n] . qr[i]`` is 0, so ``num`` is 0 too; the rule is ``out = 0``, which is what the
float form gives (``0 / (0 + eps)``).

Widths and no-overflow proof (N tokens, head dim D; every product |vc kr| <= 128 * 127 = 16256):

* ``|VK| <= 16256 N``: int32 for N <= 132104 (covers Sana's 16384 tokens at 4096**2).
* ``0 <= KS <= 127 N``; ``0 <= den <= 127 * 127 * D * N``.
* ``num = sum_n vc[n, e] w_n`` with weights ``w_n = kr[n] . qr[i] >= 0`` and ``den = sum w_n``,
  so ``|num| <= 128 den <= 2064512 D N`` (37 bits at D = 32, N = 1024; 41 at N = 16384):
  int64, not int32. ``D N <= MAX_DN = 2**36`` is enforced, keeping it below 2**58.
* ``rcp <= 2**(F+R) / den_n + 1/2``; ``|num_n| <= 128 den_n`` when sh = 0, else
  ``|num_n| <= 128 den_n + 64`` with ``den_n >= 2**(R-1)``: either way
  ``|num_n rcp| < 2**(F + R + 8)``, 49 bits at the defaults; ``F + R <= 53`` is enforced.

Error vs the exact ratio (code units; proof in :func:`datapath_error_bound`)::

    |out / 2**Fo - o| <= (|o| + 1) 2**-R + |o| 2**-(F+1) + 2**-(F+R+2) + 2**-(Fo+1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import reciprocal, round_shift_right, saturate, to_fixed
from .int_gemm import check_range
from .int_types import IntType

__all__ = [
    "MAX_DN",
    "AccumulatorWidths",
    "FixedLinearAttention",
    "accumulator_widths",
    "check_normalizer_params",
    "datapath_error_bound",
    "decode",
    "linear_attention_fixed",
    "linear_attention_int",
    "normalize",
    "quantize_int8",
]

MAX_DN = 1 << 36
_NORM_LIMIT = 1 << 62
_INT8 = IntType(8, signed=True)


@dataclass(frozen=True)
class AccumulatorWidths:
    """Bits each datapath register needs for ``n_tokens`` and ``head_dim`` (signed unless
    noted); from the bounds in the module docstring."""

    vk: int
    ksum: int  # unsigned
    num: int
    den: int  # unsigned
    product: int
    out: int


def _signed_bits(lo: int, hi: int) -> int:
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


def accumulator_widths(
    n_tokens: int,
    head_dim: int,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> AccumulatorWidths:
    """Register widths for the datapath (see the module docstring for the bounds)."""
    n, d = int(n_tokens), int(head_dim)
    if n < 1 or d < 1:
        raise ValueError(f"n_tokens and head_dim must be >= 1, got {n_tokens}, {head_dim}")
    return AccumulatorWidths(
        vk=_signed_bits(-128 * 127 * n, 127 * 127 * n),
        ksum=(127 * n).bit_length(),
        num=_signed_bits(-128 * 127 * 127 * d * n, 127 * 127 * 127 * d * n),
        den=(127 * 127 * d * n).bit_length(),
        product=recip_frac_bits + den_bits + 9,
        out=8 + out_frac_bits,
    )


@array_function("o_abs")
def datapath_error_bound(
    o_abs: ArrayLike | float,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> ArrayLike:
    """Bound on ``|out / 2**Fo - o|`` in v-code units, given ``|o| = |num / den|``.

    With ``D = den / 2**sh < 2**R`` (and ``>= 2**(R-1)`` when sh > 0), ``den_n = D + e1``,
    ``num_n = o D + e2``, ``rcp = 2**(F+R) / den_n + e3`` (each ``|e| <= 1/2``; e1 = e2 = 0 when
    sh = 0), exactly ``num_n rcp / 2**(F+R) - o = -o e1 / den_n + e2 / den_n
    + num_n e3 / 2**(F+R)``: at most ``|o| 2**-R + 2**-R + (|o| 2**R + 1/2) 2**-(F+R+1)``. The
    final rounding adds ``2**-(Fo+1)``; saturation only moves toward ``o``'s range [-128, 127].
    """
    r, f, fo = den_bits, recip_frac_bits, out_frac_bits
    o_abs = np.abs(np.asarray(o_abs, dtype=np.float64))
    return (
        (o_abs + 1.0) * 2.0**-r + o_abs * 2.0 ** -(f + 1) + 2.0 ** -(f + r + 2) + 2.0 ** -(fo + 1)
    )


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Exact ``int.bit_length`` of each non-negative int64 element."""
    _, e = np.frexp(x.astype(np.float64))
    e = e.astype(np.int64)
    # float64 may round 2**b - 1 (b > 53) up to 2**b: step back where the top bit is absent.
    return np.where((e > 0) & ((x >> np.maximum(e - 1, 0)) == 0), e - 1, e)


def _shift_each(x: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``round_shift_right(x, sh)`` with a per-element shift (one call per distinct shift)."""
    out = np.empty_like(x)
    for s in np.unique(sh):
        m = sh == s
        out[m] = round_shift_right(x[m], int(s))
    return out


def _check_params(out_frac_bits: int, den_bits: int, recip_frac_bits: int) -> None:
    if not 2 <= den_bits <= 30:
        raise ValueError(f"den_bits must be in 2..30, got {den_bits}")
    if not 0 <= recip_frac_bits <= 53 - den_bits:
        raise ValueError(f"recip_frac_bits must be in 0..{53 - den_bits}, got {recip_frac_bits}")
    if not 0 <= out_frac_bits <= recip_frac_bits + den_bits:
        raise ValueError(
            f"out_frac_bits must be in 0..{recip_frac_bits + den_bits}, got {out_frac_bits}"
        )


def check_normalizer_params(
    out_frac_bits: int, den_bits: int, recip_frac_bits: int, out_bits: int | None = None
) -> int:
    """Validate the normalizer's widths (ranges of :func:`normalize`); returns ``out_bits``
    (default ``8 + out_frac_bits``)."""
    for name, val in (("out_frac_bits", out_frac_bits), ("den_bits", den_bits),
                      ("recip_frac_bits", recip_frac_bits)):
        if isinstance(val, bool) or not isinstance(val, int | np.integer):
            raise ValueError(f"{name} must be an int, got {val!r}")
    _check_params(out_frac_bits, den_bits, recip_frac_bits)
    ob = 8 + out_frac_bits if out_bits is None else out_bits
    hi = 61 - (recip_frac_bits + den_bits - out_frac_bits)
    if isinstance(ob, bool) or not isinstance(ob, int | np.integer) or not 1 <= ob <= hi:
        raise ValueError(f"out_bits must be an int in 1..{hi} (out_bits + recip_frac_bits + "
                         f"den_bits - out_frac_bits <= 61), got {ob!r}")
    return int(ob)


def _check_int_array(name: str, x: np.ndarray, lo: int) -> np.ndarray:
    if x.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (int(x.min()) < lo or int(x.max()) >= _NORM_LIMIT):
        bad = int(x.min()) if int(x.min()) < lo else int(x.max())
        raise ValueError(f"{name} holds {bad}, outside [{lo}, 2**62)")
    return x


@array_function("num", "den")
def normalize(
    num: ArrayLike,
    den: ArrayLike,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
    out_bits: int | None = None,
) -> ArrayLike:
    """The shared normalizer: ``out ~= num / den`` with ``Fo = out_frac_bits`` fractional bits.

    ``num`` ``(..., Dv)`` integers (``|num| < 2**62``), ``den`` integers in ``[0, 2**62)``
    broadcastable to it (one denominator per row, ``(..., 1)``, shared by the row's lanes).
    With ``R = den_bits``, ``F = recip_frac_bits``, exact integer arithmetic::

        sh    = max(bitlen(den) - R, 0)
        den_n = round_shift_right(den, sh);   num_n = round_shift_right(num, sh)
        rcp   = reciprocal(den_n, F + R)
        out   = saturate(round_shift_right(num_n * rcp, F + R - Fo), out_bits)
        out   = 0 where den == 0

    ``out_bits`` defaults to ``8 + Fo``. Error (proof in :func:`datapath_error_bound`):
    ``|out / 2**Fo - num/den| <= datapath_error_bound(|num/den|)`` while ``num/den`` lies in
    the output range. Stage 3 of :func:`linear_attention_int`, the deferred softmax division of
    :mod:`golden.attention_fixed` and :mod:`golden.linear_attention_chain`.

    The product is exact: with ``k = F + R - Fo`` and ``M = 2**(out_bits + k) // rcp + 1``,
    ``M * rcp > 2**(out_bits + k)`` so ``+-M`` already saturate, and rounding is monotone; so
    ``num_n`` is clamped to ``[-M, M]`` first (the same result) and ``|num_n * rcp| <=
    2**(out_bits + k) + rcp < 2**62`` (``out_bits + k <= 61`` is enforced).
    """
    ob = check_normalizer_params(out_frac_bits, den_bits, recip_frac_bits, out_bits)
    num = _check_int_array("num", np.asarray(num), -_NORM_LIMIT + 1)
    den = _check_int_array("den", np.asarray(den), 0)
    try:
        num, den = np.broadcast_arrays(num, den)
    except ValueError as exc:
        raise ValueError(f"den of shape {den.shape} does not broadcast to num of shape "
                         f"{num.shape}") from exc
    k = recip_frac_bits + den_bits - out_frac_bits
    sh = np.maximum(_bit_length(den) - den_bits, 0)
    den_n = np.where(den == 0, 1, _shift_each(den, sh))
    num_n = _shift_each(num, sh)
    rcp = reciprocal(den_n, recip_frac_bits + den_bits)
    lim = (np.int64(1) << np.int64(ob + k)) // rcp + 1
    out = round_shift_right(np.clip(num_n, -lim, lim) * rcp, k)
    out = saturate(out, ob)
    return np.where(den == 0, 0, out).astype(np.int64)


@array_function("qc", "kc", "vc")
def linear_attention_int(
    qc: ArrayLike,
    kc: ArrayLike,
    vc: ArrayLike,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> ArrayLike:
    """The bit-exact integer datapath on int8 codes ``(..., Nq, D)``, ``(..., N, D)``,
    ``(..., N, Dv)``; returns int64 ``out`` ``(..., Nq, Dv)`` with ``out_frac_bits`` fractional
    bits in v-code units (module docstring has the exact steps)."""
    _check_params(out_frac_bits, den_bits, recip_frac_bits)
    q = check_range("q", qc, _INT8)
    k = check_range("k", kc, _INT8)
    v = check_range("v", vc, _INT8)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ValueError(f"{name} must be at least 2-D (..., tokens, dim), got shape {t.shape}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"leading dims differ: q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"head_dim of q ({q.shape[-1]}) and k ({k.shape[-1]}) differ")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"tokens of k ({k.shape[-2]}) and v ({v.shape[-2]}) differ")
    if k.shape[-2] * k.shape[-1] > MAX_DN:
        raise ValueError(f"tokens x head_dim {k.shape[-2:]} exceeds MAX_DN {MAX_DN}")
    kr, qr = np.maximum(k, 0), np.maximum(q, 0)
    vk = np.swapaxes(v, -1, -2) @ kr  # (..., Dv, D), int32 range
    ksum = kr.sum(axis=-2)  # (..., D)
    num = qr @ np.swapaxes(vk, -1, -2)  # (..., Nq, Dv), int64
    den = qr @ ksum[..., :, None]  # (..., Nq, 1), int64, >= 0
    return normalize(num, den, out_frac_bits, den_bits, recip_frac_bits)


@array_function("x")
def quantize_int8(
    x: ArrayLike, scale: float | None = None, name: str = "x"
) -> tuple[ArrayLike, float]:
    """Symmetric per-tensor int8: ``scale = absmax / 127`` (1.0 if all zero) unless given;
    ``code = clip(to_fixed(x / scale, 0), -127, 127)`` (round half away from zero, float64;
    the clip saturates only with a given scale smaller than ``absmax / 127``)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds a non-finite value ({arr[~np.isfinite(arr)].flat[0]})")
    if scale is None:
        absmax = float(np.max(np.abs(arr))) if arr.size else 0.0
        scale = absmax / 127.0 if absmax > 0 else 1.0
    elif not (isinstance(scale, int | float | np.floating) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"{name}_scale must be a finite positive number, got {scale!r}")
    codes = np.clip(to_fixed(arr / float(scale), 0), -127, 127).astype(np.int64)
    return codes, float(scale)


@dataclass(frozen=True)
class FixedLinearAttention:
    """Result of :func:`linear_attention_fixed`: ``out_codes`` (int64, ``out_frac_bits``
    fractional bits, v-code units) and the scales used."""

    out_codes: np.ndarray
    out_frac_bits: int
    q_scale: float
    k_scale: float
    v_scale: float

    def dequantize(self) -> np.ndarray:
        """float32 ``out_codes * v_scale / 2**out_frac_bits``."""
        return decode(self.out_codes, self.v_scale, self.out_frac_bits)


@array_function("out_codes")
def decode(out_codes: ArrayLike, v_scale: float, out_frac_bits: int) -> ArrayLike:
    """Float decode of the fixed-point output: ``out * v_scale / 2**out_frac_bits`` (float32)."""
    vals = np.asarray(out_codes, dtype=np.float64) * (float(v_scale) / 2.0**out_frac_bits)
    return vals.astype(np.float32)


@array_function("q", "k", "v")
def linear_attention_fixed(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    q_scale: float | None = None,
    k_scale: float | None = None,
    v_scale: float | None = None,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> FixedLinearAttention:
    """Quantize float q, k, v (``(..., tokens, dim)``) to int8 per tensor (given or absmax
    scales) and run :func:`linear_attention_int`; the result holds numpy arrays."""
    qc, sq = quantize_int8(q, q_scale, "q")
    kc, sk = quantize_int8(k, k_scale, "k")
    vc, sv = quantize_int8(v, v_scale, "v")
    out = linear_attention_int(qc, kc, vc, out_frac_bits, den_bits, recip_frac_bits)
    return FixedLinearAttention(out, out_frac_bits, sq, sk, sv)
