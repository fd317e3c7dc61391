"""Sana's ReLU linear attention with the whole chain on an int8 x int8 -> int32 array.

:func:`golden.linear_attention_fixed.linear_attention_int` multiplies int32 ``VK`` by int8 ``q``
in stage 2, which an int8 array cannot. The on-chip chain requantizes ``VK`` to int8 with one
power-of-two shift per head and splits ``KS`` into 7-bit slices. Per (batch, head), int8 codes
``qc`` ``(Nq, D)``, ``kc`` ``(N, D)``, ``vc`` ``(N, Dv)``, ``kr = max(kc, 0)``,
``qr = max(qc, 0)`` (ReLU on the operand path)::

    VK   = vc^T kr                      (Dv, D) int32     stage 1 on the array
    KS   = sum_n kr                     (D,)              an extra all-ones row
    s    = max(bitlen(max |VK|) - 7, 0)                   one shift per head
    VK8  = saturate(round_shift_right(VK, s), 8)          int8 operand
    KS_b = (KS >> 7b) mod 2**7,  b = 0..nb-1              KS = sum_b KS_b 2**(7b), KS_b in 0..127
    num8 = qr @ VK8^T                   (Nq, Dv) int32    stage 2 on the array
    den  = sum_b 2**(7b) (qr @ KS_b)    (Nq, 1)           exact: den = qr @ KS
    out  = normalize(num8 << s, den, Fo, R, F)           linear_attention_fixed.normalize

``nb = ceil(bitlen(127 N) / 7)`` (:func:`ks_slice_count`) is fixed by the widths. ``den = 0``
gives ``out = 0`` (then every ``qr_j KS_j = 0``, so ``num = 0`` too). With ``s = 0`` the chain
is :func:`linear_attention_int` bit for bit.

**Requantization (proof).** ``M = max |VK|``. If ``s = 0``, ``M <= 127`` and ``VK8 = VK``. If
``s >= 1``, ``M < 2**(s+7)`` so ``VK / 2**s`` lies in ``(-128, 128)``: rounding (ties up) gives
at least ``-128`` (no saturation below) and at most ``128``, which happens only for ``VK / 2**s
>= 127.5`` and saturates to 127. So per entry ``|VK - VK8 2**s| <= 2**(s-1)``, except at that
``+127.5`` edge where it is in ``[2**(s-1), 2**s - 1]`` (:attr:`LinearChainResult.saturated`).

**Widths.** ``|VK| <= 16256 N`` (int32 up to N = 132104, checked); ``|num8| <= 16256 D``;
``qr @ KS_b <= 16129 D``; ``|num8 << s| <= 128 den + 127 D 2**s``: the normalizer's product is
exact for any value (:func:`golden.linear_attention_fixed.normalize` clamps what saturates).

**Error** vs the exact ratio ``o = (vc^T kr qr) / (KS . qr)`` in v-code units
(:func:`chain_error_bound`): the requantization moves ``num / den`` by at most
``eps_s sum_j qr_j / den`` (``eps_s = 2**(s-1)``, or ``2**s - 1`` with a saturated entry), and
the normalizer adds :func:`golden.linear_attention_fixed.datapath_error_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import round_shift_right, saturate
from .int_gemm import AccumulatorOverflowError, check_range
from .int_types import IntType
from .linear_attention_fixed import (
    MAX_DN,
    FixedLinearAttention,
    check_normalizer_params,
    datapath_error_bound,
    normalize,
    quantize_int8,
)

__all__ = [
    "LinearChainResult",
    "chain_error_bound",
    "ks_slice_count",
    "linear_attention_chain_fixed",
    "linear_attention_chain_int",
]

_INT8 = IntType(8, signed=True)
_INT32 = IntType(32, signed=True)


@dataclass(frozen=True)
class LinearChainResult:
    """Every step of :func:`linear_attention_chain_int` (int64 numpy arrays; ``...`` the
    leading (batch, head) axes): ``out`` ``(..., Nq, Dv)`` codes with ``out_frac_bits``
    fractional bits, ``vk`` ``(..., Dv, D)``, ``shift`` ``(...)``, ``vk8`` ``(..., Dv, D)``,
    ``ks_slices`` ``(..., nb, D)``, ``num8`` ``(..., Nq, Dv)``, ``den`` ``(..., Nq, 1)``."""

    out: np.ndarray
    vk: np.ndarray
    shift: np.ndarray
    vk8: np.ndarray
    ks_slices: np.ndarray
    num8: np.ndarray
    den: np.ndarray
    out_frac_bits: int

    @property
    def saturated(self) -> np.ndarray:
        """Per head: whether an entry of ``VK`` hit the ``+127.5`` edge (rounded to 128,
        saturated to 127), which raises its requantization error from ``2**(s-1)`` to below
        ``2**s``."""
        s = self.shift[..., None, None]
        edge = self.vk - (np.int64(127) << s) >= (np.int64(1) << s) >> 1
        return ((self.vk8 == 127) & (s > 0) & edge).any(axis=(-2, -1))


def ks_slice_count(n_tokens: int) -> int:
    """``nb = ceil(bitlen(127 N) / 7)``: 7-bit slices that hold ``KS <= 127 N``."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int | np.integer) or n_tokens < 1:
        raise ValueError(f"n_tokens must be an int >= 1, got {n_tokens!r}")
    return -(-(127 * int(n_tokens)).bit_length() // 7)


def _bitlen(x: np.ndarray) -> np.ndarray:
    """Exact bit length of non-negative int64 values below 2**53."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def _check_codes(qc: ArrayLike, kc: ArrayLike, vc: ArrayLike) -> tuple[np.ndarray, ...]:
    q, k, v = (check_range(n, t, _INT8) for n, t in (("q", qc), ("k", kc), ("v", vc)))
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ValueError(f"{name} must be at least 2-D (..., tokens, dim), got shape {t.shape}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"leading dims differ: q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"head_dim of q ({q.shape[-1]}) and k ({k.shape[-1]}) differ")
    if k.shape[-2] != v.shape[-2] or k.shape[-2] < 1:
        raise ValueError(f"tokens of k ({k.shape[-2]}) and v ({v.shape[-2]}) differ or are 0")
    if k.shape[-2] * k.shape[-1] > MAX_DN:
        raise ValueError(f"tokens x head_dim {k.shape[-2:]} exceeds MAX_DN {MAX_DN}")
    return q, k, v


def _fits(name: str, x: np.ndarray, dtype: IntType) -> np.ndarray:
    if x.size and (int(x.min()) < dtype.min or int(x.max()) > dtype.max):
        bad = int(x.min()) if int(x.min()) < dtype.min else int(x.max())
        raise AccumulatorOverflowError(f"{name} holds {bad}, outside the {dtype} accumulator")
    return x


@array_function("qc", "kc", "vc")
def linear_attention_chain_int(
    qc: ArrayLike,
    kc: ArrayLike,
    vc: ArrayLike,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> LinearChainResult:
    """The on-chip chain (module docstring) on int8 codes ``(..., Nq, D)``, ``(..., N, D)``,
    ``(..., N, Dv)``: a :class:`LinearChainResult` with the output codes and every
    intermediate. Accumulators that leave int32 raise ``AccumulatorOverflowError``."""
    check_normalizer_params(out_frac_bits, den_bits, recip_frac_bits)
    q, k, v = _check_codes(qc, kc, vc)
    kr, qr = np.maximum(k, 0), np.maximum(q, 0)
    vk = _fits("VK", np.swapaxes(v, -1, -2) @ kr, _INT32)  # (..., Dv, D)
    ks = kr.sum(axis=-2)  # (..., D), <= 127 N
    shift = np.maximum(_bitlen(np.abs(vk).max(axis=(-2, -1))) - 7, 0)  # (...)
    vk8 = saturate(_shift_heads(vk, shift), 8)
    nb = ks_slice_count(k.shape[-2])
    b = 7 * np.arange(nb, dtype=np.int64)
    slices = (ks[..., None, :] >> b[:, None]) & 127  # (..., nb, D)
    num8 = _fits("num8", qr @ np.swapaxes(vk8, -1, -2), _INT32)
    partial = _fits("qr @ KS_b", qr @ np.swapaxes(slices, -1, -2), _INT32)  # (..., Nq, nb)
    den = (partial << b).sum(axis=-1, keepdims=True)
    num = num8 << shift[..., None, None]
    out = normalize(num, den, out_frac_bits, den_bits, recip_frac_bits)
    return LinearChainResult(out, vk, shift, vk8, slices, num8, den, out_frac_bits)


def _shift_heads(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``round_shift_right`` of each head's ``(..., a, b)`` block by its own ``shift[...]``."""
    out = np.empty_like(x)
    sh = np.broadcast_to(shift[..., None, None], x.shape)
    for s in np.unique(shift):
        sel = sh == s
        out[sel] = round_shift_right(x[sel], int(s))
    return out


@array_function("o_abs", "q_sum", "den", "shift")
def chain_error_bound(
    o_abs: ArrayLike | float,
    q_sum: ArrayLike | int,
    den: ArrayLike | int,
    shift: ArrayLike | int,
    saturated: ArrayLike | bool = True,
    out_frac_bits: int = 8,
    den_bits: int = 16,
    recip_frac_bits: int = 24,
) -> ArrayLike:
    """Bound on ``|out / 2**Fo - o|`` in v-code units, ``o = (vc^T kr qr) / (KS . qr)``.

    ``q_sum = sum_j qr_j`` and ``den = KS . qr`` of the query row, ``shift`` its head's ``s``,
    ``saturated`` whether a VK entry hit the +127.5 edge (:attr:`LinearChainResult.saturated`;
    default the worst case). ``num / den - o = sum_j qr_j (VK8_ej 2**s - VK_ej) / den``, each
    term at most ``qr_j eps_s`` (module docstring), so ``r = eps_s q_sum / den`` with
    ``eps_s = 0`` (s = 0), ``2**s - 1`` (saturated) or ``2**(s-1)``; the normalizer adds
    ``datapath_error_bound(|num / den|) <= datapath_error_bound(o_abs + r)``. ``den = 0``:
    ``out = 0 = o`` (the float form's 0 / eps), bound 0.
    """
    s = np.asarray(shift, dtype=np.int64)
    sat = np.asarray(saturated, dtype=bool)
    eps = np.where(s == 0, 0.0, np.where(sat, 2.0**s - 1, 2.0 ** (s - 1)))
    d = np.asarray(den, dtype=np.float64)
    if np.any(d < 0) or np.any(np.asarray(q_sum) < 0):
        raise ValueError("den and q_sum must be >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d > 0, eps * np.asarray(q_sum, dtype=np.float64) / d, 0.0)
    total = r + datapath_error_bound(np.abs(np.asarray(o_abs, dtype=np.float64)) + r,
                                     out_frac_bits, den_bits, recip_frac_bits)
    return np.where(d > 0, total, 0.0)


@array_function("q", "k", "v")
def linear_attention_chain_fixed(
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
    scales, :func:`golden.linear_attention_fixed.quantize_int8`) and run
    :func:`linear_attention_chain_int`; float output ``dequantize()`` = ``out * s_v / 2**Fo``."""
    qc, sq = quantize_int8(q, q_scale, "q")
    kc, sk = quantize_int8(k, k_scale, "k")
    vc, sv = quantize_int8(v, v_scale, "v")
    res = linear_attention_chain_int(qc, kc, vc, out_frac_bits, den_bits, recip_frac_bits)
    return FixedLinearAttention(res.out, out_frac_bits, sq, sk, sv)
