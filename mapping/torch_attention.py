"""Attention blocks of the model twins (:mod:`mapping.torch_models`), IR leaves but one.

* :class:`KVCache`: a preallocated K/V cache written at a position -> ``KVCacheWrite``;
* :class:`SoftmaxAttention`: unmasked softmax attention (every query sees every key; GQA by
  head count) -> ``Attention`` (FLUX.1's joint attention, Sana's cross-attention, a decode
  step over a cache);
* :class:`CachedAttention` (not a leaf): decode attention of one query over a :class:`KVCache`
  (the cache write, then a :class:`SoftmaxAttention`);
* :class:`DuoAttention`: DuoAttention (Xiao et al. 2024) for a chunk of queries ending at
  ``context``: the first ``retrieval_heads`` KV heads keep the full causal cache, the others a
  ``sink`` + ``recent`` streaming cache -> a cache write and an attention per kind;
* :class:`ReLULinearAttention`: Sana's LiteLA, ReLU-kernel linear attention ->
  ``LinearAttention``.

Caches start with random "past" keys and values (the prompt) and are written functionally or at
fixed positions, so running a model twice gives the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .fx_trace import format_of
from .ir import Attention, KVCacheWrite, LinearAttention, Op

if TYPE_CHECKING:
    from .fx_trace import LeafCall

__all__ = ["CachedAttention", "DuoAttention", "KVCache", "ReLULinearAttention",
           "SoftmaxAttention", "streaming_positions"]


class KVCache(nn.Module):
    """K and V of ``capacity`` positions (``(batch, heads, capacity, head_dim)``, random past).
    ``forward(k, v, pos)`` writes the new tokens at ``pos`` and returns the first ``pos +
    tokens`` positions of both."""

    def __init__(self, batch: int, heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("k", torch.randn(batch, heads, capacity, head_dim).to(dtype))
        self.register_buffer("v", torch.randn(batch, heads, capacity, head_dim).to(dtype))

    def forward(self, k: torch.Tensor, v: torch.Tensor,
                pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = pos + k.shape[-2]
        if end > self.capacity:
            raise ValueError(f"KV cache of {self.capacity} positions cannot hold {end}")
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        return self.k[:, :, :end].clone(), self.v[:, :, :end].clone()

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One cache write of the new tokens into the full-capacity cache."""
        k = call.tensors()[0]
        batch, heads, tokens, head_dim = k.shape
        return [KVCacheWrite("kv_write", batch, tokens, heads, head_dim, self.capacity,
                             format_of(self.k.dtype), k.fmt)]


class SoftmaxAttention(nn.Module):
    """``softmax(q k^T / sqrt(D)) v`` with no mask: ``q`` ``(batch, q_heads, queries, D)``,
    ``k``, ``v`` ``(batch, kv_heads, keys, D)``, ``q_heads`` a multiple of ``kv_heads`` (each
    KV head serves its group of consecutive query heads). Every query sees every key."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or q.shape[1] % k.shape[1] \
                or q.shape[-1] != k.shape[-1]:
            raise ValueError(f"SoftmaxAttention takes q (B, Hq, N, D), k and v (B, Hkv, M, D) "
                             f"with Hkv dividing Hq, got {tuple(q.shape)}, {tuple(k.shape)}, "
                             f"{tuple(v.shape)}")
        group = q.shape[1] // k.shape[1]
        if group > 1:
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        return F.scaled_dot_product_attention(q, k, v)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``Attention``, non-causal (one query: causal, the last position seeing all)."""
        q, k = call.tensors()[:2]
        batch, heads, queries, head_dim = q.shape
        return [Attention("attention", batch, heads, k.shape[1], head_dim, queries, k.shape[2],
                          queries == 1, None, q.fmt, k.fmt)]


class CachedAttention(nn.Module):
    """Decode attention: one query per sequence over a :class:`KVCache` of ``capacity``."""

    def __init__(self, batch: int, heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.cache = KVCache(batch, heads, head_dim, capacity, dtype)
        self.attend = SoftmaxAttention()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                pos: int) -> torch.Tensor:
        keys, values = self.cache(k, v, pos)
        return self.attend(q, keys, values)


def streaming_positions(context: int, tokens: int, sink: int, recent: int) -> list[int]:
    """Key positions a streaming head keeps for ``tokens`` queries ending at ``context``: the
    ``sink`` first and the last ``tokens + recent - 1``."""
    keep = set(range(min(sink, context))) | set(range(max(0, context - tokens - recent + 1),
                                                      context))
    return sorted(keep)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
            k_pos: torch.Tensor, window: tuple[int, int] | None) -> torch.Tensor:
    """Causal (optionally windowed) attention by absolute positions, GQA by repetition."""
    group = q.shape[1] // k.shape[1]
    seen = k_pos[None, :] <= q_pos[:, None]
    if window is not None:
        sink, recent = window
        seen &= (k_pos[None, :] < sink) | (q_pos[:, None] - k_pos[None, :] < recent)
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=seen)


class DuoAttention(nn.Module):
    """DuoAttention for ``tokens`` queries ending at position ``context`` (decode: 1).

    ``forward(q, k, v, pos)`` (``q``: ``(batch, q_heads, tokens, head_dim)``, ``k``, ``v``:
    ``(batch, kv_heads, tokens, head_dim)``, ``pos = context - tokens``): the first
    ``retrieval_heads`` KV heads (and their query groups) attend causally over a full cache of
    ``context`` positions, the others over their :func:`streaming_positions`, with the
    ``(sink, recent)`` window."""

    def __init__(self, q_heads: int, kv_heads: int, head_dim: int, retrieval_heads: int,
                 context: int, tokens: int, sink: int, recent: int, batch: int = 1,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if not 0 <= retrieval_heads <= kv_heads or q_heads % kv_heads or tokens > context:
            raise ValueError(f"DuoAttention: retrieval_heads {retrieval_heads} of {kv_heads} KV "
                             f"heads ({q_heads} query heads), {tokens} tokens at {context}")
        self.q_heads, self.kv_heads, self.retrieval = q_heads, kv_heads, retrieval_heads
        self.context, self.tokens, self.window = context, tokens, (sink, recent)
        self.cache_dtype = dtype
        past = context - tokens
        stream = [p for p in streaming_positions(context, tokens, sink, recent) if p < past]
        streaming = kv_heads - retrieval_heads
        self.register_buffer("stream_pos", torch.tensor(stream + list(range(past, context))),
                             persistent=False)
        for kind, heads, n in (("retrieval", retrieval_heads, past), ("streaming", streaming,
                                                                      len(stream))):
            for t in ("k", "v"):
                self.register_buffer(f"{t}_{kind}",
                                     torch.randn(batch, heads, n, head_dim).to(dtype))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                pos: int) -> torch.Tensor:
        if pos != self.context - self.tokens or q.shape[2] != self.tokens:
            raise ValueError(f"DuoAttention built for {self.tokens} tokens at {self.context}, "
                             f"called with {q.shape[2]} at {pos}")
        r, g = self.retrieval, self.q_heads // self.kv_heads
        q_pos = torch.arange(pos, self.context)
        outs = []
        if r:
            kr = torch.cat([self.k_retrieval, k[:, :r]], 2)
            vr = torch.cat([self.v_retrieval, v[:, :r]], 2)
            outs.append(_attend(q[:, :r * g], kr, vr, q_pos, torch.arange(self.context), None))
        if r < self.kv_heads:
            ks = torch.cat([self.k_streaming, k[:, r:]], 2)
            vs = torch.cat([self.v_streaming, v[:, r:]], 2)
            outs.append(_attend(q[:, r * g:], ks, vs, q_pos, self.stream_pos, self.window))
        return torch.cat(outs, 1)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """Per head kind: the cache write (the cache holds the keys its heads still see) and the
        causal (streaming: windowed) attention."""
        q, k = call.tensors()[:2]
        batch, _, tokens, head_dim = q.shape
        g, fmt, kv_fmt = self.q_heads // self.kv_heads, q.fmt, format_of(self.cache_dtype)
        writes: list[Op] = []
        attends: list[Op] = []
        for kind, heads, window in (("retrieval", self.retrieval, None),
                                    ("streaming", self.kv_heads - self.retrieval, self.window)):
            if heads:
                att = Attention(f"attn_{kind}", batch, heads * g, heads, head_dim, tokens,
                                self.context, True, window, fmt, kv_fmt)
                writes.append(KVCacheWrite(f"kv_write_{kind}", batch, tokens, heads, head_dim,
                                           att.keys_touched, kv_fmt, k.fmt))
                attends.append(att)
        return writes + attends


class ReLULinearAttention(nn.Module):
    """Sana's LiteLA over ``(batch, heads, tokens, head_dim)`` q, k, v: ``relu(q) (relu(k)^T
    v) / (relu(q) sum relu(k))``, in float32."""

    def __init__(self, eps: float = 1e-15) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        qf, kf, vf = F.relu(q.float()), F.relu(k.float()), v.float()
        kv = kf.transpose(-1, -2) @ vf
        den = qf @ kf.sum(-2, keepdim=True).transpose(-1, -2)
        return ((qf @ kv) / (den + self.eps)).to(q.dtype)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``LinearAttention``."""
        q = call.tensors()[0]
        batch, heads, tokens, head_dim = q.shape
        return [LinearAttention("lite_la", batch, heads, head_dim, tokens, q.fmt)]
