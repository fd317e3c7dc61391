"""KV caches of int8 codes for the fixed-point attention head (:mod:`golden.attention_fixed`).

**Streaming cache** (:class:`StreamingCacheFixed`, DuoAttention's streaming heads): ``sink +
recent`` slots of k and v codes and the position each slot holds (``-1`` while empty). Token
``pos`` is written to ``ring_address(pos) = pos if pos < sink else sink + (pos - sink) mod
recent`` (:func:`golden.kv_cache.ring_buffer_address`, restated so this numpy module imports no
torch; the tests hold the two equal), every token in order, so a later token overwrites an
earlier one in the ring.

**Step** (a chunk of ``C`` new tokens at positions ``L..L+C-1``; ``C = 1`` is decode). The
accelerator reads the cache in *slot order* - sink slots, then ring slots ``0..recent-1`` in
physical order, not position order - and the chunk after it::

    keys = [k slots || kc],   vals = [v slots || vc],   kpos = [slot positions || L..L+C-1]
    mask = position_mask(L..L+C-1, kpos, sink, recent)      held positions visible per rule
    out  = attention_head_int(qc, keys, vals, mult, shift, mask, cfg)

then writes the chunk. **Exactness:** the keys each query sees are exactly its streaming window
(the cache holds positions ``0..min(L, sink)-1`` and ``max(sink, L-recent)..L-1``, and query
``p >= L`` needs no key below ``p - recent + 1 >= L - recent + 1`` outside the sinks), empty or
out-of-window slots are masked (weight 0, not in the max), and the head's sums are exact
integers, so key order does not matter: ``out`` equals :func:`attention_head_int` on the whole
sequence with ``attention_mask(..., sink, recent)``, bit for bit, for any chunking.

**Full cache** (:class:`FullCacheFixed`, retrieval heads): append-only, causal mask.

Query heads of a GQA group share a cache: ``qc`` is ``(..., C, D)``, leading axes the group.
"""

from __future__ import annotations

import numpy as np

from .arrays import ArrayLike, array_function
from .attention_fixed import AttentionFixedConfig, attention_head_int, position_mask
from .int_gemm import check_range
from .int_types import IntType

__all__ = ["FullCacheFixed", "StreamingCacheFixed", "ring_address"]

_INT8 = IntType(8, signed=True)


def _check_int(name: str, val: object, lo: int) -> int:
    if isinstance(val, bool) or not isinstance(val, int | np.integer) or val < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    return int(val)


def ring_address(pos: int, sink: int, recent: int) -> int:
    """Slot of position ``pos`` in a ``sink + recent`` slot streaming buffer (module
    docstring; equal to :func:`golden.kv_cache.ring_buffer_address`)."""
    pos, sink, recent = _check_int("pos", pos, 0), _check_int("sink", sink, 0), \
        _check_int("recent", recent, 1)
    return pos if pos < sink else sink + (pos - sink) % recent


class _CacheFixed:
    """Chunk validation, the slot-order read and the attend step shared by both caches."""

    def __init__(self, head_dim: int, mult: int, shift: int,
                 cfg: AttentionFixedConfig | None, v_dim: int | None) -> None:
        self.head_dim = _check_int("head_dim", head_dim, 1)
        self.v_dim = self.head_dim if v_dim is None else _check_int("v_dim", v_dim, 1)
        if isinstance(mult, bool) or not isinstance(mult, int | np.integer) \
                or not 1 <= mult < 1 << 31:
            raise ValueError(f"mult must be an int in 1..2**31-1, got {mult!r}")
        if isinstance(shift, bool) or not isinstance(shift, int | np.integer) \
                or not 0 <= shift <= 62:
            raise ValueError(f"shift must be an int in 0..62, got {shift!r}")
        self.mult, self.shift = int(mult), int(shift)
        self.cfg = cfg if cfg is not None else AttentionFixedConfig()
        self.length = 0

    def _window(self) -> tuple[int, int] | tuple[None, None]:
        return None, None

    def _stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k codes, v codes, positions)`` in the read order."""
        raise NotImplementedError

    def _write(self, kc: np.ndarray, vc: np.ndarray) -> None:
        raise NotImplementedError

    def _check(self, qc: ArrayLike, kc: ArrayLike, vc: ArrayLike) -> tuple[np.ndarray, ...]:
        q, k, v = (check_range(n, t, _INT8) for n, t in (("q", qc), ("k", kc), ("v", vc)))
        if k.ndim != 2 or k.shape[1] != self.head_dim or k.shape[0] < 1:
            raise ValueError(f"kc must be (C >= 1, head_dim={self.head_dim}), got {k.shape}")
        if v.shape != (k.shape[0], self.v_dim):
            raise ValueError(f"vc must be (C={k.shape[0]}, v_dim={self.v_dim}), got {v.shape}")
        if q.ndim < 2 or q.shape[-2:] != k.shape:
            raise ValueError(f"qc must be (..., C={k.shape[0]}, head_dim={self.head_dim}), got "
                             f"{q.shape}")
        return q, k, v

    @array_function("qc", "kc", "vc")
    def step(self, qc: ArrayLike, kc: ArrayLike, vc: ArrayLike) -> ArrayLike:
        """Attend ``C`` new queries (positions ``length..length+C-1``) over the stored keys in
        read order and the chunk, then store the chunk; int64 out codes ``(..., C, v_dim)``."""
        q, k, v = self._check(qc, kc, vc)
        sk, sv, spos = self._stored()
        c = k.shape[0]
        new = np.arange(self.length, self.length + c)
        mask = position_mask(new, np.concatenate([spos, new]), *self._window())
        keys, vals = np.concatenate([sk, k]), np.concatenate([sv, v])
        heads = q.reshape(-1, c, self.head_dim)
        out = np.stack([attention_head_int(h, keys, vals, self.mult, self.shift, mask, self.cfg)
                        for h in heads])
        self._write(k, v)
        self.length += c
        return out.reshape(*q.shape[:-1], self.v_dim)

    @array_function("qc", "kc", "vc")
    def prefill(self, qc: ArrayLike, kc: ArrayLike, vc: ArrayLike, chunk: int) -> ArrayLike:
        """:meth:`step` over chunks of ``chunk`` tokens (token axis ``-2``), outputs joined."""
        chunk = _check_int("chunk", chunk, 1)
        t = np.shape(kc)[0] if np.ndim(kc) else 0
        return np.concatenate([self.step(qc[..., s:s + chunk, :], kc[s:s + chunk],
                                         vc[s:s + chunk]) for s in range(0, t, chunk)], axis=-2)


class StreamingCacheFixed(_CacheFixed):
    """``sink + recent`` slots of int8 k/v codes, read in slot order (module docstring)."""

    def __init__(self, head_dim: int, sink: int, recent: int, mult: int, shift: int,
                 cfg: AttentionFixedConfig | None = None, v_dim: int | None = None) -> None:
        super().__init__(head_dim, mult, shift, cfg, v_dim)
        ring_address(0, sink, recent)  # validates sink / recent
        self.sink, self.recent = int(sink), int(recent)
        self.k = np.zeros((sink + recent, self.head_dim), dtype=np.int64)
        self.v = np.zeros((sink + recent, self.v_dim), dtype=np.int64)
        self.positions = np.full(sink + recent, -1, dtype=np.int64)

    def _window(self) -> tuple[int, int]:
        return self.sink, self.recent

    def _stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.k, self.v, self.positions

    def _write(self, kc: np.ndarray, vc: np.ndarray) -> None:
        for i in range(kc.shape[0]):
            pos = self.length + i
            slot = ring_address(pos, self.sink, self.recent)
            self.k[slot], self.v[slot], self.positions[slot] = kc[i], vc[i], pos


class FullCacheFixed(_CacheFixed):
    """Append-only cache of int8 k/v codes (retrieval heads): every token, causal mask."""

    def __init__(self, head_dim: int, mult: int, shift: int,
                 cfg: AttentionFixedConfig | None = None, v_dim: int | None = None) -> None:
        super().__init__(head_dim, mult, shift, cfg, v_dim)
        self.k = np.zeros((0, self.head_dim), dtype=np.int64)
        self.v = np.zeros((0, self.v_dim), dtype=np.int64)

    def _stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.k, self.v, np.arange(self.length)

    def _write(self, kc: np.ndarray, vc: np.ndarray) -> None:
        self.k = np.concatenate([self.k, kc])
        self.v = np.concatenate([self.v, vc])
