"""Bit-exact fixed-point attention head: int8 GEMMs, a requantizer, a softmax-exp unit and the
shared normalizer, with deferred (flash-attention style) normalization.

One (query head, KV head) pair on int8 codes ``qc`` ``(Nq, D)``, ``kc`` ``(Nk, D)``, ``vc``
``(Nk, Dv)`` and a boolean visibility mask ``(Nq, Nk)`` (True = visible, every row at least one),
with ``c = cfg.softmax`` (:class:`golden.softmax_fixed.SoftmaxFixedConfig`), ``Fi =
c.in_frac_bits``, ``P = c.exp_bits``, ``wb = cfg.weight_bits``, ``W1 = 2**(wb-1)``::

    S   = qc @ kc^T                                      exact, must fit int32 (checked)
    x   = saturate(round_shift_right(S * mult, shift), 32)   logits, Fi fractional bits
    m   = max of x over the row's visible entries
    e   = exp_neg(x - m, c)                              softmax_fixed's steps t, n, f, i, r, y, e
    w   = min(round_shift_right(e, P - (wb-1)), W1 - 1)  visible; 0 where masked
    O   = w @ vc                                         exact, must fit int32 (checked)
    den = sum(w)                                         >= W1 - 1 (the max entry: e = 2**P)
    out = normalize(O, den, Fo, R, F)                    golden.linear_attention_fixed.normalize

``(mult, shift)`` come from :func:`logit_multiplier`: ``mult * 2**-shift`` is
``q_scale k_scale / sqrt(D) * 2**Fi`` to ``mult_bits`` significant bits. ``w`` is the array's
signed ``wb``-bit operand (non-negative; the max entry ``2**(wb-1)`` saturates to ``W1 - 1``).
``out`` is signed ``8 + Fo`` bits with ``Fo = cfg.out_frac_bits`` fractional bits, in v-code
units: float ``out * s_v / 2**Fo``.

**Widths** (``n`` visible keys per row): ``|S| <= 2**14 D``; ``d = x - m`` 33 bits;
``0 <= e <= 2**P``; ``0 <= w <= W1 - 1``; ``|O| <= 128 (W1 - 1) n`` (int32 up to n = 132104
at wb = 8); ``W1 - 1 <= den <= (W1 - 1) n``; ``|O| <= 128 den`` so the normalizer's product
stays below ``2**(F+R+8)``.

**Order independence.** Every sum is an exact integer and the max is order-free, so permuting
the keys (with the mask's columns) leaves ``out`` bit-identical: a KV cache may present keys in
slot order (:mod:`golden.attention_cache_fixed`).

**Grouped-query attention.** :func:`attention_head_int` is one (query head, KV head) pair; the
``G`` query heads of a group share ``kc``, ``vc`` (and the per-tensor k, v scales), so each is
run against the same codes. :func:`attention_head_fixed` takes ``q`` ``(..., Nq, D)`` for that.

**Masks.** :func:`position_mask` is golden.duo_attention's visible-key rule on positions
(:func:`golden.duo_attention.visible_keys`: causal ``j <= p``, streaming also ``j < sink or
p - j < recent``), restated here so this numpy module imports no torch (the tests hold the two
equal). Error bound vs float: :func:`attention_error_bound`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .arrays import ArrayLike, array_function
from .fixed_point import round_shift_right, saturate
from .int_gemm import AccumulatorOverflowError, check_range, int_gemm
from .int_types import IntType
from .linear_attention_fixed import (
    check_normalizer_params,
    datapath_error_bound,
    decode,
    normalize,
    quantize_int8,
)
from .softmax_fixed import SoftmaxFixedConfig, exp_neg

__all__ = [
    "AttentionFixedConfig",
    "FixedAttention",
    "attention_error_bound",
    "attention_head_fixed",
    "attention_head_int",
    "attention_logits",
    "attention_mask",
    "attention_weights",
    "logit_multiplier",
    "position_mask",
    "weights_below_max",
]

_INT8 = IntType(8, signed=True)
_INT32_MIN = -(1 << 31)


def _is_int(val: object) -> bool:
    return not isinstance(val, bool) and isinstance(val, int | np.integer)


@dataclass(frozen=True)
class AttentionFixedConfig:
    """Widths of the attention head: the softmax-exp unit's ``softmax`` config, the weight
    operand ``weight_bits`` (signed), the logit multiplier's ``mult_bits`` and the normalizer's
    ``out_frac_bits``, ``den_bits``, ``recip_frac_bits`` (out is signed ``8 + out_frac_bits``)."""

    softmax: SoftmaxFixedConfig = field(default_factory=SoftmaxFixedConfig)
    weight_bits: int = 8
    mult_bits: int = 16
    out_frac_bits: int = 8
    den_bits: int = 16
    recip_frac_bits: int = 24

    def __post_init__(self) -> None:
        if not isinstance(self.softmax, SoftmaxFixedConfig):
            raise ValueError(f"softmax must be a SoftmaxFixedConfig, got {self.softmax!r}")
        for name, lo, hi in (("weight_bits", 2, 16), ("mult_bits", 2, 31)):
            val = getattr(self, name)
            if not _is_int(val) or not lo <= val <= hi:
                raise ValueError(f"{name} must be an int in {lo}..{hi}, got {val!r}")
        if self.weight_bits - 1 > self.softmax.exp_bits:
            raise ValueError(f"weight_bits ({self.weight_bits}) needs softmax.exp_bits >= "
                             f"{self.weight_bits - 1}, got {self.softmax.exp_bits}")
        check_normalizer_params(self.out_frac_bits, self.den_bits, self.recip_frac_bits)

    @property
    def out_bits(self) -> int:
        """Signed width of an output code (``8 + out_frac_bits``)."""
        return 8 + self.out_frac_bits


def logit_multiplier(
    q_scale: float,
    k_scale: float,
    head_dim: int,
    cfg: AttentionFixedConfig | SoftmaxFixedConfig | None = None,
    mult_bits: int | None = None,
) -> tuple[int, int]:
    """``(mult, shift)`` with ``2**(mb-1) <= mult < 2**mb`` and ``mult * 2**-shift`` the
    round-half-even of ``c = q_scale * k_scale / sqrt(head_dim) * 2**Fi`` (float64, in that
    order) to ``mb = mult_bits`` significant bits (default ``cfg.mult_bits``, or 16 for a
    :class:`SoftmaxFixedConfig`): ``|mult 2**-shift / c - 1| <= 2**-mb``. ``shift`` must be in
    0..62: scales so large (or small) that it would not be raise a ``ValueError``."""
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    if isinstance(cfg, AttentionFixedConfig):
        soft, mb = cfg.softmax, cfg.mult_bits if mult_bits is None else mult_bits
    elif isinstance(cfg, SoftmaxFixedConfig):
        soft, mb = cfg, 16 if mult_bits is None else mult_bits
    else:
        raise ValueError(f"cfg must be an AttentionFixedConfig or SoftmaxFixedConfig, got {cfg!r}")
    if not _is_int(mb) or not 2 <= mb <= 31:
        raise ValueError(f"mult_bits must be an int in 2..31, got {mb!r}")
    for name, val in (("q_scale", q_scale), ("k_scale", k_scale)):
        if isinstance(val, bool) or not isinstance(val, int | float | np.integer | np.floating) \
                or not (math.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be a finite positive number, got {val!r}")
    if not _is_int(head_dim) or head_dim < 1:
        raise ValueError(f"head_dim must be an int >= 1, got {head_dim!r}")
    c = float(q_scale) * float(k_scale) / math.sqrt(int(head_dim)) * 2.0 ** soft.in_frac_bits
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"logit scale q_scale * k_scale / sqrt(head_dim) * 2**Fi = {c!r} is "
                         "not a finite positive number")
    frac, exp = math.frexp(c)  # c = frac * 2**exp, frac in [0.5, 1)
    mult, shift = round(frac * (1 << mb)), mb - exp  # round(): half to even, exact scaling
    if mult == 1 << mb:
        mult, shift = mult >> 1, shift - 1
    if shift < 0:
        raise ValueError(f"logit scale {c!r} (q_scale {q_scale!r} * k_scale {k_scale!r} / "
                         f"sqrt({head_dim}) * 2**{soft.in_frac_bits}) needs shift {shift} < 0 "
                         f"with mult_bits {mb}: the scales are too large")
    if shift > 62:
        raise ValueError(f"logit scale {c!r} needs shift {shift} > 62: the scales are too small")
    return int(mult), int(shift)


def _check_window(sink: int | None, recent: int | None) -> None:
    if (sink is None) != (recent is None):
        raise ValueError(f"sink and recent must be given together, got sink={sink!r}, "
                         f"recent={recent!r}")
    if sink is not None:
        for name, val, lo in (("sink", sink, 0), ("recent", recent, 1)):
            if not _is_int(val) or val < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")


@array_function("query_positions", "key_positions")
def position_mask(
    query_positions: ArrayLike,
    key_positions: ArrayLike,
    sink: int | None = None,
    recent: int | None = None,
) -> ArrayLike:
    """Boolean ``(Nq, Nk)``: key position ``j`` visible to query position ``p`` iff
    ``0 <= j <= p`` and, with a window, ``j < sink or p - j < recent`` (golden.duo_attention's
    rule; a negative key position marks an empty cache slot, never visible)."""
    _check_window(sink, recent)
    p = np.asarray(query_positions)
    j = np.asarray(key_positions)
    for name, arr in (("query_positions", p), ("key_positions", j)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a 1-D integer array, got shape {arr.shape}, "
                             f"dtype {arr.dtype}")
    if p.size and int(p.min()) < 0:
        raise ValueError(f"query_positions holds {int(p.min())}, must be >= 0")
    p, j = p.astype(np.int64)[:, None], j.astype(np.int64)[None, :]
    visible = (j >= 0) & (j <= p)
    if sink is not None:
        visible &= (j < sink) | (p - j < recent)
    return visible


def attention_mask(
    n_queries: int, n_keys: int, start: int, sink: int | None = None, recent: int | None = None
) -> np.ndarray:
    """Boolean ``(n_queries, n_keys)`` mask of queries at positions ``start..start+Nq-1`` over
    keys at positions ``0..n_keys-1``: causal, or streaming ``(sink, recent)``
    (:func:`position_mask`). Needs ``start + n_queries <= n_keys`` (every query's own key)."""
    for name, val, lo in (("n_queries", n_queries, 1), ("n_keys", n_keys, 1), ("start", start, 0)):
        if not _is_int(val) or val < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    if start + n_queries > n_keys:
        raise ValueError(f"start + n_queries ({start} + {n_queries}) exceeds n_keys ({n_keys})")
    return position_mask(np.arange(start, start + n_queries), np.arange(n_keys), sink, recent)


@array_function("qc", "kc")
def attention_logits(qc: ArrayLike, kc: ArrayLike, mult: int, shift: int) -> ArrayLike:
    """``x = saturate(round_shift_right((qc @ kc^T) * mult, shift), 32)`` for int8 codes
    ``(Nq, D)``, ``(Nk, D)``; ``qc @ kc^T`` must fit int32, ``1 <= mult < 2**31``,
    ``0 <= shift <= 62``."""
    if not _is_int(mult) or not 1 <= mult < 1 << 31:
        raise ValueError(f"mult must be an int in 1..2**31-1, got {mult!r}")
    if not _is_int(shift) or not 0 <= shift <= 62:
        raise ValueError(f"shift must be an int in 0..62, got {shift!r}")
    q, k = check_range("q", qc, _INT8), check_range("k", kc, _INT8)
    if q.ndim != 2 or k.ndim != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"qc and kc must be (Nq, D) and (Nk, D), got {q.shape} and {k.shape}")
    try:
        s = int_gemm(q, k.T, "int8", "int8", 32)
    except AccumulatorOverflowError as exc:
        raise AccumulatorOverflowError(f"scores S = qc @ kc^T: {exc}") from exc
    return saturate(round_shift_right(s * np.int64(mult), int(shift)), 32)


@array_function("x", "mask")
def attention_weights(
    x: ArrayLike, mask: ArrayLike | None = None, cfg: AttentionFixedConfig | None = None
) -> ArrayLike:
    """Unnormalized int weights ``w`` of int32 logits ``x`` ``(..., Nk)`` (module docstring):
    max over the visible entries of each row (``mask`` boolean, broadcastable to ``x``,
    default all visible; every row needs one), ``exp_neg``, quantized to ``weight_bits``;
    masked entries 0."""
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    arr = check_range("x", x, IntType(32))
    if arr.ndim < 1 or arr.shape[-1] < 1:
        raise ValueError(f"x must have a non-empty last axis, got shape {arr.shape}")
    vis = np.ones(arr.shape, dtype=bool) if mask is None else np.asarray(mask)
    if vis.dtype != np.bool_:
        raise ValueError(f"mask must be boolean, got dtype {vis.dtype}")
    try:
        vis = np.broadcast_to(vis, arr.shape)
    except ValueError as exc:
        raise ValueError(f"mask of shape {vis.shape} does not broadcast to x {arr.shape}") from exc
    empty = ~vis.any(axis=-1)
    if empty.any():
        row = tuple(int(i) for i in np.argwhere(empty)[0])
        raise ValueError(f"row {row} of the mask has no visible entry")
    m = np.where(vis, arr, _INT32_MIN).max(axis=-1, keepdims=True)
    return np.where(vis, weights_below_max(np.where(vis, arr, m), m, cfg), 0)


@array_function("x", "m")
def weights_below_max(x: ArrayLike, m: ArrayLike, cfg: AttentionFixedConfig | None = None
                      ) -> ArrayLike:
    """Int weights ``min(round_shift_right(exp_neg(x - m), P - (wb - 1)), 2**(wb-1) - 1)`` of
    int32 logits ``x`` against a row maximum ``m >= x`` (broadcastable; ``ValueError`` if some
    ``x > m``): what :func:`attention_weights` computes once it has the row's max, and what a
    head over key blocks computes in its second pass with the max of the first."""
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    d = np.asarray(x, dtype=np.int64) - np.asarray(m, dtype=np.int64)
    if d.size and d.max() > 0:
        raise ValueError(f"a logit exceeds its row maximum by {int(d.max())}")
    e = exp_neg(d, cfg.softmax)
    wb, p = cfg.weight_bits, cfg.softmax.exp_bits
    return np.minimum(round_shift_right(e, p - (wb - 1)), (1 << (wb - 1)) - 1)


@array_function("qc", "kc", "vc", "mask")
def attention_head_int(
    qc: ArrayLike,
    kc: ArrayLike,
    vc: ArrayLike,
    mult: int,
    shift: int,
    mask: ArrayLike | None = None,
    cfg: AttentionFixedConfig | None = None,
) -> ArrayLike:
    """The bit-exact head on int8 codes ``(Nq, D)``, ``(Nk, D)``, ``(Nk, Dv)`` with a boolean
    ``(Nq, Nk)`` mask (default all visible): int64 ``out`` ``(Nq, Dv)``, signed ``8 + Fo`` bits
    with ``Fo`` fractional bits in v-code units (module docstring)."""
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    v = check_range("v", vc, _INT8)
    x = attention_logits(qc, kc, mult, shift)
    if v.ndim != 2 or v.shape[0] != x.shape[1]:
        raise ValueError(f"vc must be (Nk={x.shape[1]}, Dv), got shape {v.shape}")
    if mask is not None and np.shape(mask) != x.shape:
        raise ValueError(f"mask must have shape (Nq, Nk) = {x.shape}, got {np.shape(mask)}")
    w = attention_weights(x, mask, cfg)
    try:
        o = int_gemm(w, v, IntType(cfg.weight_bits), "int8", 32)
    except AccumulatorOverflowError as exc:
        raise AccumulatorOverflowError(f"O = w @ vc: {exc}") from exc
    den = w.sum(axis=-1, keepdims=True)
    return normalize(o, den, cfg.out_frac_bits, cfg.den_bits, cfg.recip_frac_bits)


@dataclass(frozen=True)
class FixedAttention:
    """Result of :func:`attention_head_fixed`: ``out_codes`` (int64, ``out_frac_bits``
    fractional bits, v-code units), the scales and the logit multiplier used."""

    out_codes: np.ndarray
    out_frac_bits: int
    q_scale: float
    k_scale: float
    v_scale: float
    mult: int
    shift: int

    def dequantize(self) -> np.ndarray:
        """float32 ``out_codes * v_scale / 2**out_frac_bits``."""
        return decode(self.out_codes, self.v_scale, self.out_frac_bits)


def _mask_for(mask: object, nq: int, nk: int) -> np.ndarray:
    """None (all visible), "causal", ``(sink, recent)`` (queries are the last ``nq`` of the
    ``nk`` positions) or a boolean ``(nq, nk)`` array."""
    if mask is None:
        return np.ones((nq, nk), dtype=bool)
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"mask must be None, 'causal', (sink, recent) or an array, "
                             f"got {mask!r}")
        return attention_mask(nq, nk, nk - nq)
    if isinstance(mask, tuple):
        if len(mask) != 2:
            raise ValueError(f"a streaming mask is (sink, recent), got {mask!r}")
        return attention_mask(nq, nk, nk - nq, *mask)
    return np.asarray(mask)


@array_function("q", "k", "v")
def attention_head_fixed(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: object = None,
    cfg: AttentionFixedConfig | None = None,
    q_scale: float | None = None,
    k_scale: float | None = None,
    v_scale: float | None = None,
) -> FixedAttention:
    """Float ``q`` ``(..., Nq, D)`` (leading axes: query heads sharing this KV head), ``k``
    ``(Nk, D)``, ``v`` ``(Nk, Dv)``: per-tensor int8 quantization (given or absmax scales,
    :func:`golden.linear_attention_fixed.quantize_int8`), :func:`logit_multiplier`, then
    :func:`attention_head_int` per query head. ``mask``: None (all visible), ``"causal"``,
    ``(sink, recent)`` (streaming; queries are the last Nq of the Nk positions) or a boolean
    ``(Nq, Nk)`` array. The result holds numpy arrays."""
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    qc, sq = quantize_int8(q, q_scale, "q")
    kc, sk = quantize_int8(k, k_scale, "k")
    vc, sv = quantize_int8(v, v_scale, "v")
    if qc.ndim < 2 or kc.ndim != 2 or vc.ndim != 2:
        raise ValueError(f"q must be (..., Nq, D), k (Nk, D), v (Nk, Dv); got {qc.shape}, "
                         f"{kc.shape}, {vc.shape}")
    mult, shift = logit_multiplier(sq, sk, kc.shape[1], cfg)
    m = _mask_for(mask, qc.shape[-2], kc.shape[0])
    heads = qc.reshape(-1, *qc.shape[-2:])
    out = np.stack([attention_head_int(h, kc, vc, mult, shift, m, cfg) for h in heads])
    out = out.reshape(*qc.shape[:-1], vc.shape[1])
    return FixedAttention(out, cfg.out_frac_bits, sq, sk, sv, mult, shift)


@array_function("n_visible", "logit_span", "v_range", "den", "o_abs")
def attention_error_bound(
    n_visible: ArrayLike | int,
    logit_span: ArrayLike | float,
    cfg: AttentionFixedConfig | None = None,
    v_range: ArrayLike | float = 255.0,
    den: ArrayLike | int | None = None,
    o_abs: ArrayLike | float = 128.0,
) -> ArrayLike:
    """Bound on ``|out / 2**Fo - o*|`` in v-code units for a row of ``n = n_visible`` keys.

    ``o* = sum_j softmax(z)_j vc_j`` over the visible keys, ``z_j = (s_q qc) . (s_k kc_j) /
    sqrt(D)`` (the float reference on the int8-dequantized inputs: input quantization is not
    counted); ``logit_span`` ``L = max z - min z`` over the row, ``v_range`` ``Rv = max vc -
    min vc`` (<= 255), ``den`` the row's ``sum(w)`` if known (a posteriori; default its minimum
    ``W1 - 1``), ``o_abs`` ``|O / den|`` (<= 128). Needs no logit to saturate (``|S mult
    2**-shift| < 2**31 - 1/2``). Proof, ``W1 = 2**(wb-1)``, ``m`` the row's max-x entry:

    1. ``mult 2**-shift = c (1 + delta)``, ``|delta| <= dl = 2**-mb + 2**-50`` (RNE, float64
       ``c``); ``x_j 2**-Fi = z_j (1 + delta) + eta_j``, ``|eta_j| <= 2**-(Fi+1)``; so
       ``d_j 2**-Fi = z_j - z_m + lam_j``, ``|lam_j| <= lb = dl L + 2**-Fi``.
    2. ``E_j = e_j 2**-P = exp(d_j 2**-Fi) (1 + rho_j) + a_j``, ``|rho_j| <= rho``,
       ``|a_j| <= a`` (``SoftmaxFixedConfig.exp_rel_error`` / ``exp_abs_error``).
    3. ``w_j = W1 E_j + gam_j``, ``|gam_j| <= 1/2``, unless ``round(W1 E_j) = W1`` saturates:
       then ``W1 E_j >= W1 - 1/2`` and ``w_j = W1 - 1 = W1 E_j (1 + sig_j)``,
       ``-1/W1 <= sig_j < 0``. So ``w_j = u_j F_j + W1 a_j (1 + sig_j) + gam_j`` with ``u_j =
       W1 exp(z_j - z_m)`` and ``F_j = e^lam_j (1 + rho_j)(1 + sig_j)`` in ``[lo, hi]``,
       ``hi = e^lb (1 + rho)``, ``lo = e^-lb (1 - rho)(1 - 1/W1)``. Any positive multiple of
       ``u`` is proportional to softmax(z); take ``u'_j = k u_j``, ``k = (hi + lo) / 2``:
       ``|w_j - u'_j| <= A u'_j + nu``, ``A = (hi - lo) / (hi + lo)``, ``nu = W1 a + 1/2``.
    4. With ``W = den = sum w``, ``U = sum u'``, ``o = O / W``: since ``sum u'_j (vc_j - o*) =
       0``, ``o - o* = sum (w_j - u'_j)(vc_j - o*) / W`` and ``|vc_j - o*| <= Rv`` (``o*`` is in
       the hull of the ``vc_j``). ``sum |w_j - u'_j| <= A U + n nu``, ``W >= U (1 - A) - n nu``
       give ``|o - o*| <= Rv (A (W + n nu) / (1 - A) + n nu) / W``, decreasing in ``W``.
    5. The normalizer adds ``datapath_error_bound(|o|)`` (linear_attention_fixed).

    The ``n nu / W`` term (weight rounding, half an LSB of each of ``n`` int8 weights) dominates
    long rows: the worst case is many keys just below half a weight LSB, all rounded away. At
    the defaults with ``L = 10``: ``A = 0.0079``, ``nu = 0.503``; a priori (``W = 127``,
    ``Rv = 255``) 3.1 v-LSB at n = 1, 67 at n = 64, ~n at large n; a posteriori with ``W = 40 n``
    5.3. Measured on random rows (D = 32, n = 64 .. 200): max error 0.55 .. 1.3 v-LSB, 4-20x
    below the a posteriori bound (``tests/golden/test_attention_fixed.py``).
    """
    cfg = cfg if cfg is not None else AttentionFixedConfig()
    w1 = float(1 << (cfg.weight_bits - 1))
    n = np.asarray(n_visible, dtype=np.float64)
    span = np.asarray(logit_span, dtype=np.float64)
    if np.any(n < 1) or np.any(span < 0) or np.any(np.asarray(v_range) < 0):
        raise ValueError("n_visible must be >= 1, logit_span and v_range >= 0")
    dl = 2.0 ** -cfg.mult_bits + 2.0 ** -50
    lb = dl * span + 2.0 ** -cfg.softmax.in_frac_bits
    rho, a = cfg.softmax.exp_rel_error, cfg.softmax.exp_abs_error
    hi, lo = np.exp(lb) * (1 + rho), np.exp(-lb) * (1 - rho) * (1 - 1 / w1)
    big = (hi - lo) / (hi + lo)
    nu = n * (w1 * a + 0.5)
    w = np.asarray(w1 - 1 if den is None else den, dtype=np.float64)
    if np.any(w < w1 - 1):
        raise ValueError(f"den must be >= {w1 - 1:.0f} (the max weight), got {w.min()}")
    with np.errstate(divide="ignore"):
        weights = np.asarray(v_range, dtype=np.float64) * (big * (w + nu) / (1 - big) + nu) / w
    weights = np.where(big < 1, weights, np.inf)  # lb so large that the bound says nothing
    return weights + datapath_error_bound(o_abs, cfg.out_frac_bits, cfg.den_bits,
                                          cfg.recip_frac_bits)
