"""KV caches for DuoAttention: streaming (sink + ring buffer), full, and the per-head mix.

**Streaming cache layout** (one per streaming KV head group; what hardware implements). A buffer
of ``sink + recent`` slots per (batch, head). Token at absolute position ``pos`` lives at::

    ring_buffer_address(pos) = pos                             if pos < sink
                             = sink + (pos - sink) mod recent  otherwise

Slots ``0..sink-1`` are the attention sinks (written once, never overwritten); slots
``sink..sink+recent-1`` are a ring whose write pointer wraps. After ``n`` tokens the buffer holds
positions ``0..min(n, sink)-1`` and ``max(sink, n - recent)..n-1``; the oldest ring entry is at
``ring_buffer_address(max(sink, n - recent))``.

**Chunked prefill / decode.** :meth:`StreamingKVCache.step` takes a chunk of ``C`` new tokens
(``C == 1`` is a decode step). Keys are presented as ``[cached sink + recent tokens || chunk]``
in *original position order* (sinks, then the ring unrolled oldest-first, then the chunk); each
query ``p`` attends to the keys its streaming mask allows (``min(p + 1, sink + recent)`` of
them). Then the chunk is written through the address function, which compacts the cache to sink
+ last ``recent`` tokens (constant memory). Writing only the survivors equals writing every token
in order, since later tokens overwrite earlier ones in the ring.

**Exactness.** Per query the cache gathers the same key/value vectors in the same order as
:func:`golden.duo_attention.streaming_attention` does on the whole sequence and hands them to the
same kernel (:func:`golden.duo_attention.attend_visible`) with the same tensor shapes, so
outputs are bit-identical (``torch.equal``), for any chunking, including decode after prefill.
Presenting keys in original order is what makes this exact: a rotated ring order would permute
the softmax/PV summation and differ in the last bits. :class:`DuoCache` keeps one cache per KV
head and so reproduces :func:`golden.duo_attention.duo_attention` (also per head) exactly.

The caches hold torch tensors; ``step``, ``prefill`` and :func:`chunked` take numpy arrays or
tensors and answer in q's kind (:mod:`golden.arrays`).
"""

from __future__ import annotations

import torch

from .arrays import ArrayLike, array_function
from .duo_attention import attend_visible, visible_keys

__all__ = ["DuoCache", "FullKVCache", "StreamingKVCache", "chunked", "ring_buffer_address"]


def ring_buffer_address(pos: int, sink: int, recent: int) -> int:
    """Slot of absolute token position ``pos`` in a ``sink + recent`` slot streaming buffer."""
    for name, val, lo in (("pos", pos, 0), ("sink", sink, 0), ("recent", recent, 1)):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    return pos if pos < sink else sink + (pos - sink) % recent


class _Cache:
    """Shared chunk validation and the per-query gather-and-attend loop."""

    def __init__(self, batch: int, kv_heads: int, head_dim: int) -> None:
        for name, val in (("batch", batch), ("kv_heads", kv_heads), ("head_dim", head_dim)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        self.batch, self.kv_heads, self.head_dim = batch, kv_heads, head_dim
        self.length = 0

    def _check(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
        shape = (self.batch, self.kv_heads, None, self.head_dim)
        for name, x in (("q", q), ("k", k), ("v", v)):
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                raise ValueError(f"{name} must be a 4-D torch.Tensor, got "
                                 f"{getattr(x, 'shape', type(x).__name__)}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} holds a non-finite value")
        if k.shape != v.shape:
            raise ValueError(f"k and v shapes differ: k {tuple(k.shape)}, v {tuple(v.shape)}")
        b, hkv, c, d = k.shape
        if (b, hkv, d) != (shape[0], shape[1], shape[3]):
            raise ValueError(f"k has shape {tuple(k.shape)}, expected (batch={self.batch}, "
                             f"kv_heads={self.kv_heads}, chunk, head_dim={self.head_dim})")
        if q.shape[0] != b or q.shape[2] != c or q.shape[3] != d or q.shape[1] % hkv:
            raise ValueError(f"q has shape {tuple(q.shape)}, expected (batch={b}, a multiple "
                             f"of kv_heads={hkv}, chunk={c}, head_dim={d})")
        if c < 1:
            raise ValueError("chunk must hold at least one token, got 0")
        return q.shape[1] // hkv

    def _held(self) -> list[int]:
        raise NotImplementedError

    def _gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _write(self, k: torch.Tensor, v: torch.Tensor) -> None:
        raise NotImplementedError

    def _window(self) -> tuple[int, int] | tuple[None, None]:
        raise NotImplementedError

    @array_function("q", "k", "v", native="torch")
    def step(self, q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
        """Attend ``C`` new queries (positions ``length..length+C-1``), then store the chunk."""
        g = self._check(q, k, v)
        b, hq, c, d = q.shape
        ck, cv = self._gather()
        keys = torch.cat([ck, k.float()], dim=2)
        vals = torch.cat([cv, v.float()], dim=2)
        held = self._held() + list(range(self.length, self.length + c))
        where = {p: i for i, p in enumerate(held)}
        qf = q.float().reshape(b, self.kv_heads, g, c, d)
        out = torch.empty(b, self.kv_heads, g, c, d, dtype=torch.float32)
        sink, recent = self._window()
        for i in range(c):
            idx = torch.tensor([where[p] for p in visible_keys(self.length + i, sink, recent)],
                               dtype=torch.long)
            out[:, :, :, i] = attend_visible(qf[:, :, :, i], keys[:, :, idx], vals[:, :, idx])
        self._write(k.float(), v.float())
        self.length += c
        return out.reshape(b, hq, c, d)

    @array_function("q", "k", "v", native="torch")
    def prefill(self, q: ArrayLike, k: ArrayLike, v: ArrayLike, chunk: int) -> ArrayLike:
        """Chunked prefill: :meth:`step` over chunks of ``chunk`` tokens; outputs concatenated."""
        return chunked(self.step, q, k, v, chunk)


class StreamingKVCache(_Cache):
    """Sink + ring-buffer cache of ``sink + recent`` slots; see module docstring."""

    def __init__(self, batch: int, kv_heads: int, head_dim: int, sink: int, recent: int) -> None:
        super().__init__(batch, kv_heads, head_dim)
        ring_buffer_address(0, sink, recent)  # validates sink / recent
        self.sink, self.recent = sink, recent
        self.k = torch.zeros(batch, kv_heads, sink + recent, head_dim)
        self.v = torch.zeros_like(self.k)

    def _window(self) -> tuple[int, int]:
        return self.sink, self.recent

    def _held(self) -> list[int]:
        n = self.length
        return list(range(min(n, self.sink))) + list(range(max(self.sink, n - self.recent), n))

    def held_positions(self) -> list[int]:
        """Absolute positions currently stored, in original order."""
        return self._held()

    def slots_in_order(self) -> list[int]:
        """Buffer slots of :meth:`held_positions` (the read order of the hardware)."""
        return [ring_buffer_address(p, self.sink, self.recent) for p in self._held()]

    def _gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor(self.slots_in_order(), dtype=torch.long)
        return self.k[:, :, idx], self.v[:, :, idx]

    def _write(self, k: torch.Tensor, v: torch.Tensor) -> None:
        end = self.length + k.shape[2]
        for i in range(k.shape[2]):
            pos = self.length + i
            if pos < self.sink or pos >= end - self.recent:  # the survivors of the chunk
                slot = ring_buffer_address(pos, self.sink, self.recent)
                self.k[:, :, slot] = k[:, :, i]
                self.v[:, :, slot] = v[:, :, i]


class FullKVCache(_Cache):
    """Append-only cache holding every token (retrieval heads)."""

    def __init__(self, batch: int, kv_heads: int, head_dim: int) -> None:
        super().__init__(batch, kv_heads, head_dim)
        self.k = torch.zeros(batch, kv_heads, 0, head_dim)
        self.v = torch.zeros_like(self.k)

    def _window(self) -> tuple[None, None]:
        return None, None

    def _held(self) -> list[int]:
        return list(range(self.length))

    def _gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k, self.v

    def _write(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k = torch.cat([self.k, k], dim=2)
        self.v = torch.cat([self.v, v], dim=2)


class DuoCache:
    """Per KV head: a :class:`FullKVCache` where ``retrieval[h]``, else a streaming cache."""

    def __init__(self, batch: int, retrieval, head_dim: int, sink: int, recent: int) -> None:
        self.retrieval = [bool(x) for x in torch.as_tensor(retrieval).flatten().tolist()]
        if not self.retrieval:
            raise ValueError("retrieval must name at least one KV head, got 0 entries")
        self.caches: list[_Cache] = [
            FullKVCache(batch, 1, head_dim) if r else
            StreamingKVCache(batch, 1, head_dim, sink, recent) for r in self.retrieval]

    @property
    def length(self) -> int:
        return self.caches[0].length

    @array_function("q", "k", "v", native="torch")
    def step(self, q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
        """One chunk through every head's cache; ``k``/``v`` carry all KV heads."""
        hkv = len(self.caches)
        if k.dim() != 4 or k.shape[1] != hkv:
            raise ValueError(f"k has shape {tuple(k.shape)}, expected kv_heads={hkv} on axis 1")
        if q.dim() != 4 or q.shape[1] % hkv:
            raise ValueError(f"q has shape {tuple(q.shape)}, q_heads must be a multiple of "
                             f"kv_heads={hkv}")
        g = q.shape[1] // hkv
        return torch.cat([c.step(q[:, h * g:(h + 1) * g], k[:, h:h + 1], v[:, h:h + 1])
                          for h, c in enumerate(self.caches)], dim=1)

    @array_function("q", "k", "v", native="torch")
    def prefill(self, q: ArrayLike, k: ArrayLike, v: ArrayLike, chunk: int) -> ArrayLike:
        """Chunked prefill through every head's cache (see :func:`chunked`)."""
        return chunked(self.step, q, k, v, chunk)

    def held_tokens(self) -> list[int]:
        """Tokens stored per KV head (the memory the accounting in ``kv_memory`` counts)."""
        return [c.length if isinstance(c, FullKVCache) else len(c._held()) for c in self.caches]


@array_function("q", "k", "v", native="torch")
def chunked(step, q: ArrayLike, k: ArrayLike, v: ArrayLike, chunk: int) -> ArrayLike:
    """Feed ``(q, k, v)`` along the token axis to ``step`` in chunks of ``chunk`` tokens."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    t = k.shape[2]
    if q.shape[2] != t:
        raise ValueError(f"q has {q.shape[2]} tokens but k has {t}: prefill needs tq == tk")
    return torch.cat([step(q[:, :, s:s + chunk], k[:, :, s:s + chunk], v[:, :, s:s + chunk])
                      for s in range(0, t, chunk)], dim=2)
