"""DuoAttention float references: full, streaming, per-head duo and gated-mix attention.

Shapes: ``q`` is ``(batch, q_heads, tq, d)``, ``k`` and ``v`` are ``(batch, kv_heads, tk, d)``.
Grouped-query attention maps the ``G = q_heads // kv_heads`` *consecutive* query heads
``h * G .. h * G + G - 1`` onto KV head ``h`` (MHA is ``G == 1``). The queries are the *last*
``tq`` of the ``tk`` positions: query row ``i`` sits at absolute position ``p = tk - tq + i``, so
prefill (``tq == tk``) and single-token decode (``tq == 1``) share one definition.

Masks (key position ``j``, query position ``p``)::

    causal(p, j)    = j <= p
    streaming(p, j) = causal(p, j) and (j < sink or p - j < recent)

``softmax(q . k / sqrt(d))`` over the visible keys, float32 torch throughout; q, k, v (and
alpha) may be numpy arrays or tensors, the result comes in q's kind (:mod:`golden.arrays`).

**Exactness contract.** :func:`full_attention`, :func:`streaming_attention` and
:func:`duo_attention` compute every query row separately from its *visible keys only*, gathered
in original key order, vectorised over (batch, head). Query ``p`` of a streaming head sees
exactly ``min(p + 1, sink + recent)`` keys (``0..sink-1`` then ``p-recent+1..p``); a full head
sees ``p + 1``. A KV cache that hands the same keys, in the same order, to the same kernel
(:func:`attend_visible`) with the same (batch, head) shape reproduces these references
bit for bit - which is how :mod:`golden.kv_cache` is held to them with ``torch.equal``.

:func:`mixed_attention` is the vectorised, differentiable training form (dense ``-inf`` masks):
``(1 - alpha) * streaming + alpha * full`` per KV head. It equals the references to float32
rounding (not bit for bit).
"""

from __future__ import annotations

import math

import torch

from .arrays import ArrayLike, array_function

__all__ = [
    "attend_visible",
    "causal_mask",
    "duo_attention",
    "full_attention",
    "mixed_attention",
    "streaming_attention",
    "streaming_mask",
    "visible_keys",
]


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_finite(name: str, x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = x[~torch.isfinite(x)].flatten()[0].item()
        raise ValueError(f"{name} holds a non-finite value ({bad})")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Validate shapes and values; return the group size ``q_heads // kv_heads``."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, tokens, d), got shape "
                             f"{tuple(x.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: k {tuple(k.shape)}, v {tuple(v.shape)}")
    b, hq, tq, d = q.shape
    _, hkv, tk, _ = k.shape
    if k.shape[0] != b:
        raise ValueError(f"k batch {k.shape[0]} != q batch {b}")
    if k.shape[3] != d:
        raise ValueError(f"k head dim {k.shape[3]} != q head dim {d}")
    if d < 1 or hkv < 1 or tq < 1:
        raise ValueError(f"q shape {tuple(q.shape)} / k shape {tuple(k.shape)} has an empty axis")
    if hq % hkv != 0:
        raise ValueError(f"q_heads ({hq}) must be a multiple of kv_heads ({hkv})")
    if tq > tk:
        raise ValueError(f"q has tq={tq} queries but k has only tk={tk} keys (need tq <= tk)")
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_finite(name, x)
    return hq // hkv


def _check_window(sink: int, recent: int) -> None:
    _check_int("sink", sink, 0)
    _check_int("recent", recent, 1)


def causal_mask(tq: int, tk: int) -> torch.Tensor:
    """Boolean ``(tq, tk)`` mask: query row ``i`` (position ``tk - tq + i``) sees keys ``<= p``."""
    _check_int("tq", tq, 1)
    _check_int("tk", tk, tq)
    p = torch.arange(tk - tq, tk).unsqueeze(1)
    j = torch.arange(tk).unsqueeze(0)
    return j <= p


def streaming_mask(tq: int, tk: int, sink: int, recent: int) -> torch.Tensor:
    """Boolean ``(tq, tk)`` mask ``(j < sink or p - j < recent) and j <= p``."""
    _check_window(sink, recent)
    _check_int("tq", tq, 1)
    _check_int("tk", tk, tq)
    p = torch.arange(tk - tq, tk).unsqueeze(1)
    j = torch.arange(tk).unsqueeze(0)
    return (j <= p) & ((j < sink) | (p - j < recent))


def visible_keys(p: int, sink: int | None = None, recent: int | None = None) -> list[int]:
    """Key positions query ``p`` sees, in order: all ``0..p`` (full) or the streaming window."""
    if sink is None or recent is None:
        return list(range(p + 1))
    lo = max(p - recent + 1, 0)
    return list(range(min(sink, lo))) + list(range(lo, p + 1))


@array_function("q", "k", "v", native="torch")
def attend_visible(q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
    """Attention of one query position over keys that are *all* visible (no mask).

    ``q`` ``(batch, kv_heads, G, d)``, ``k``/``v`` ``(batch, kv_heads, n, d)`` -> ``(batch,
    kv_heads, G, d)``: ``softmax(q k^T / sqrt(d)) v`` in float32. The single kernel every
    exact path (references and caches) goes through.
    """
    return _attend(q, k, v)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:func:`attend_visible` on tensors (the per-query inner loops call this directly)."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # same layout for every caller
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    return torch.matmul(torch.softmax(s, dim=-1), v)


def _rowwise(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             window: tuple[int, int] | None) -> torch.Tensor:
    """Exact reference: one :func:`attend_visible` call per query over its gathered keys."""
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    g = hq // hkv
    qf = q.float().reshape(b, hkv, g, tq, d)
    kf, vf = k.float(), v.float()
    out = torch.empty(b, hkv, g, tq, d, dtype=torch.float32)
    sink, recent = window if window is not None else (None, None)
    for i in range(tq):
        idx = torch.tensor(visible_keys(tk - tq + i, sink, recent), dtype=torch.long)
        out[:, :, :, i] = _attend(qf[:, :, :, i], kf[:, :, idx], vf[:, :, idx])
    return out.reshape(b, hq, tq, d)


@array_function("q", "k", "v", native="torch")
def full_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = True) -> ArrayLike:
    """Full (causal by default) attention ``(batch, q_heads, tq, d)``; see module docstring."""
    g = _check_qkv(q, k, v)
    if causal:
        return _rowwise(q, k, v, None)
    b, hq, tq, d = q.shape
    hkv = k.shape[1]
    qf = q.float().reshape(b, hkv, g * tq, d)
    return _attend(qf, k.float(), v.float()).reshape(b, hq, tq, d)


@array_function("q", "k", "v", native="torch")
def streaming_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike,
                        sink: int, recent: int) -> ArrayLike:
    """Attention-sink + recent-window attention (the streaming mask), every head."""
    _check_qkv(q, k, v)
    _check_window(sink, recent)
    return _rowwise(q, k, v, (sink, recent))


def _check_retrieval(retrieval, kv_heads: int) -> list[bool]:
    flags = [bool(x) for x in torch.as_tensor(retrieval).flatten().tolist()]
    if len(flags) != kv_heads:
        raise ValueError(f"retrieval has {len(flags)} entries, expected kv_heads={kv_heads}")
    return flags


@array_function("q", "k", "v", native="torch")
def duo_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, retrieval,
                  sink: int, recent: int) -> ArrayLike:
    """Per KV head: full attention where ``retrieval[h]``, streaming attention otherwise.

    Each KV head (with its query group) is computed on its own, shape ``(batch, 1, ...)``, so a
    cache holding one head per retrieval/streaming store reproduces it exactly.
    """
    g = _check_qkv(q, k, v)
    _check_window(sink, recent)
    flags = _check_retrieval(retrieval, k.shape[1])
    outs = []
    for h, is_retrieval in enumerate(flags):
        qh = q[:, h * g:(h + 1) * g]
        kh, vh = k[:, h:h + 1], v[:, h:h + 1]
        outs.append(_rowwise(qh, kh, vh, None if is_retrieval else (sink, recent)))
    return torch.cat(outs, dim=1)


def _masked_softmax_pv(s: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``softmax(s masked to -inf outside mask) @ v`` (training path, dense masks)."""
    return torch.matmul(torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1), v)


@array_function("q", "k", "v", "alpha", native="torch")
def mixed_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, alpha: ArrayLike,
                    sink: int, recent: int) -> ArrayLike:
    """DuoAttention's identification form: ``(1 - alpha_h) * streaming + alpha_h * full``.

    ``alpha`` has one entry per KV head (broadcast over its query group); it is used as given
    (callers clamp it to ``[0, 1]``) and gradients flow to it and to ``q``, ``k``, ``v``.
    Vectorised with dense masks: equal to the row-wise references up to float32 rounding.
    """
    g = _check_qkv(q, k, v)
    _check_window(sink, recent)
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    alpha = torch.as_tensor(alpha)
    if alpha.dim() != 1 or alpha.shape[0] != hkv:
        raise ValueError(f"alpha has shape {tuple(alpha.shape)}, expected ({hkv},) = kv_heads")
    _check_finite("alpha", alpha.detach())
    qf = q.float().reshape(b, hkv, g, tq, d)
    kf, vf = k.float(), v.float()
    s = torch.matmul(qf, kf.unsqueeze(2).transpose(-1, -2)) * (1.0 / math.sqrt(d))
    vg = vf.unsqueeze(2)
    full = _masked_softmax_pv(s, vg, causal_mask(tq, tk))
    stream = _masked_softmax_pv(s, vg, streaming_mask(tq, tk, sink, recent))
    a = alpha.float().reshape(1, hkv, 1, 1, 1)
    return ((1 - a) * stream + a * full).reshape(b, hq, tq, d)
