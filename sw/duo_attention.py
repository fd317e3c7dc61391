"""DuoAttention in Triton: chunked prefill and decode, checked against :mod:`golden.duo_attention`.

Shapes follow golden: ``q`` ``(batch, q_heads, tq, d)``, ``k``/``v`` ``(batch, kv_heads, tk, d)``;
grouped-query attention maps the ``G = q_heads // kv_heads`` consecutive query heads
``h*G .. h*G+G-1`` onto KV head ``h``. Query row ``i`` sits at position ``p = tk - tq + i``.
Per KV head ``h`` with ``retrieval[h]`` true the mask is causal (``j <= p``); otherwise it is the
streaming mask ``j <= p and (j < sink or p - j < recent)``. Output:
``softmax(q k^T / sqrt(d)) v`` over the visible keys, float32.

Entry points

* :func:`duo_attention` - stateless chunked prefill (``tq <= tk``), equal to
  :func:`golden.duo_attention.duo_attention` within ``1e-5`` absolute (fp32 inputs): the kernel
  sums the softmax in ``BLOCK_N`` blocks (online softmax) instead of golden's one row at a time.
  ``return_stats=True`` also returns the number of key blocks each program visited.
* :class:`DuoKVCache` / :func:`prefill` / :func:`decode_step` - the cache form: retrieval heads
  keep every token, streaming heads a constant ``sink + recent`` slot buffer addressed by
  :func:`golden.kv_cache.ring_buffer_address`. Prefill (in chunks) then decode equals golden's
  full-sequence duo attention at every step within the same tolerance.

``backend="triton"`` launches :mod:`sw.duo_attention_kernels`; ``backend="torch"`` is a plain
torch path with dense masks over the same key sources (never chosen silently). Inputs may be
float32, float16 or bfloat16 (all alike); arithmetic and output are float32. ``head_dim`` must be
a power of two in ``[16, 128]`` (``tl.dot`` needs >= 16; larger tiles are not supported).
Non-finite inputs are not checked (that would need a device sync); NaN/Inf propagate.
"""

from __future__ import annotations

from ._runtime import INTERPRETED  # first: sets TRITON_INTERPRET before triton is imported

# isort: split
import math
from collections.abc import Sequence

import numpy as np
import torch
import triton

from golden.kv_cache import ring_buffer_address

from .arrays import ArrayLike, tensor_function
from .duo_attention_kernels import _duo_attn_kernel

__all__ = ["DuoKVCache", "decode_step", "duo_attention", "prefill"]

_BACKENDS = ("triton", "torch")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------- validation
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_options(sink: object, recent: object, backend: object, block_m: object,
                   block_n: object) -> None:
    _check_int("sink", sink, 0)
    _check_int("recent", recent, 1)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    for name, val in (("block_m", block_m), ("block_n", block_n)):
        _check_int(name, val, 16)
        if val & (val - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {val}")


def _check_tensors(q: object, k: object, v: object, backend: str) -> int:
    """Shapes, dtypes and devices of ``q, k, v``; returns the group size ``q_heads // kv_heads``."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, heads, tokens, head_dim), got shape "
                             f"{tuple(x.shape)}")
        if x.dtype not in _DTYPES:
            raise ValueError(f"{name} dtype must be one of {_DTYPES}, got {x.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: k {tuple(k.shape)}, v {tuple(v.shape)}")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise ValueError(f"{name} dtype {x.dtype} != q dtype {q.dtype}")
        if x.device != q.device:
            raise ValueError(f"{name} is on {x.device} but q is on {q.device}")
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    if k.shape[0] != b:
        raise ValueError(f"k batch {k.shape[0]} != q batch {b}")
    if k.shape[3] != d:
        raise ValueError(f"k head_dim {k.shape[3]} != q head_dim {d}")
    if d < 16 or d > 128 or d & (d - 1):
        raise ValueError(f"head_dim must be a power of two in [16, 128], got {d}")
    if hkv < 1 or hq % hkv:
        raise ValueError(f"q_heads ({hq}) must be a positive multiple of kv_heads ({hkv})")
    if tq < 1:
        raise ValueError(f"q must hold at least one query token, got tq={tq}")
    if tq > tk:
        raise ValueError(f"q has tq={tq} queries but k has only tk={tk} keys (need tq <= tk)")
    if backend == "triton":
        want = "cpu" if INTERPRETED else "cuda"
        if q.device.type != want:
            raise ValueError(f"backend='triton' needs {want} tensors here (interpreted="
                             f"{INTERPRETED}), got q on {q.device}")
    return hq // hkv


def _check_retrieval(retrieval: object, kv_heads: int | None) -> list[bool]:
    """``retrieval`` as one bool per KV head (bools or 0/1 ints: a sequence, tensor or array);
    ``kv_heads=None`` accepts any count."""
    if isinstance(retrieval, torch.Tensor | np.ndarray):
        vals = retrieval.flatten().tolist()
    elif isinstance(retrieval, Sequence) and not isinstance(retrieval, str):
        vals = list(retrieval)
    else:
        raise ValueError(f"retrieval must be a sequence, tensor or array of bools, got "
                         f"{retrieval!r}")
    if kv_heads is not None and len(vals) != kv_heads:
        raise ValueError(f"retrieval has {len(vals)} entries, expected kv_heads={kv_heads}")
    for x in vals:
        if x not in (0, 1) or isinstance(x, float):
            raise ValueError(f"retrieval entries must be bools (or 0/1), got {x!r}")
    return [bool(x) for x in vals]


# ----------------------------------------------------------------------------- torch backend
def _torch_attend(q: torch.Tensor, keys: torch.Tensor, vals: torch.Tensor, kpos: torch.Tensor,
                  qpos: torch.Tensor, flags: list[bool], sink: int, recent: int) -> torch.Tensor:
    """Dense-mask attention. ``keys`` ``(b, hkv, n, d)``; ``kpos`` ``(hkv, n)`` (-1 = empty)."""
    b, hq, tq, d = q.shape
    hkv = keys.shape[1]
    g = hq // hkv
    qf = q.float().reshape(b, hkv, g, tq, d)
    s = torch.matmul(qf, keys.float().unsqueeze(2).transpose(-1, -2)) / math.sqrt(d)
    p, j = qpos.view(1, tq, 1), kpos.unsqueeze(1)
    ret = torch.tensor(flags, dtype=torch.bool, device=q.device).view(hkv, 1, 1)
    vis = (j >= 0) & (j <= p) & (ret | (j < sink) | (p - j < recent))  # (hkv, tq, n)
    s = s.masked_fill(~vis.view(1, hkv, 1, tq, -1), float("-inf"))
    out = torch.matmul(torch.softmax(s, dim=-1), vals.float().unsqueeze(2))
    return out.reshape(b, hq, tq, d)


def _ring_positions(n_past: int, sink: int, recent: int) -> list[int]:
    """Absolute position held by each ring slot after ``n_past`` tokens (-1 = empty slot)."""
    pos = [-1] * (sink + recent)
    for p in [*range(min(n_past, sink)), *range(max(sink, n_past - recent), n_past)]:
        pos[ring_buffer_address(p, sink, recent)] = p
    return pos


# ----------------------------------------------------------------------------- launcher
def _launch(q: torch.Tensor, flags: list[bool], hmap: list[int], lin: tuple, ring: tuple,
            chunk: tuple, q_pos0: int, lin_n: tuple[int, int], ring_n: int, chunk_n: int,
            sink: int, recent: int, block_m: int, block_n: int) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """Launch :func:`_duo_attn_kernel`; ``lin``/``ring``/``chunk`` are ``(k, v)`` 4-D pairs."""
    b, hq, tq, d = q.shape
    hkv = len(flags)
    bm = min(block_m, max(16, triton.next_power_of_2(tq)))  # decode: one 16-row block
    n_mblk = triton.cdiv(tq, bm)
    out = torch.empty((b, hq, tq, d), dtype=torch.float32, device=q.device)
    cnt = torch.zeros((b, hq, n_mblk), dtype=torch.int32, device=q.device)
    if b == 0:
        return out, cnt
    flag_t = torch.tensor(flags, dtype=torch.int32, device=q.device)
    hmap_t = torch.tensor(hmap, dtype=torch.int32, device=q.device)
    q = q.contiguous()
    for pair in (lin, ring, chunk):
        assert pair[0].stride() == pair[1].stride() and pair[0].stride(3) == 1
    (lk, lv), (rk, rv), (ck, cv) = lin, ring, chunk
    _duo_attn_kernel[(n_mblk, b * hq)](
        q, out, cnt, flag_t, hmap_t, lk, lv, rk, rv, ck, cv,
        q.stride(0), q.stride(1), q.stride(2), out.stride(0), out.stride(1), out.stride(2),
        lk.stride(0), lk.stride(1), lk.stride(2), rk.stride(0), rk.stride(1), rk.stride(2),
        ck.stride(0), ck.stride(1), ck.stride(2),
        hq, hq // hkv, tq, q_pos0, lin_n[0], lin_n[1], ring_n, chunk_n,
        sink, recent, 1.0 / math.sqrt(d), n_mblk,
        HEAD_DIM=d, BLOCK_M=bm, BLOCK_N=block_n)
    return out, cnt


# ----------------------------------------------------------------------------- stateless
@tensor_function("q", "k", "v")
def duo_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, retrieval, sink: int,
                  recent: int, *, backend: str = "triton", block_m: int = 32, block_n: int = 32,
                  return_stats: bool = False):
    """Per-KV-head full (retrieval) or streaming attention; ``golden.duo_attention.duo_attention``.

    ``q`` holds the last ``tq`` of the ``tk`` positions (chunked prefill; ``tq == tk`` is a whole
    prompt). Returns the float32 ``(batch, q_heads, tq, d)`` output, and with ``return_stats``
    also an int32 ``(batch, q_heads, cdiv(tq, bm))`` tensor: key blocks visited per program
    (``bm = min(block_m, max(16, next_pow2(tq)))``; the torch backend returns ``None``). A
    streaming head visits only blocks holding a visible key, so at most
    ``cdiv(sink, block_n) + cdiv(recent + bm - 1, block_n) + 1`` per query block.
    """
    _check_options(sink, recent, backend, block_m, block_n)
    _check_tensors(q, k, v, backend)
    flags = _check_retrieval(retrieval, k.shape[1])
    tq, tk = q.shape[2], k.shape[2]
    if backend == "torch":
        kpos = torch.arange(tk, device=q.device).expand(k.shape[1], tk)
        out = _torch_attend(q, k, v, kpos, torch.arange(tk - tq, tk, device=q.device), flags,
                            sink, recent)
        return (out, None) if return_stats else out
    k, v = k.contiguous(), v.contiguous()
    out, cnt = _launch(q, flags, list(range(len(flags))), (k, v), (k, v), (k, v), tk - tq,
                       (tk, tk), 0, 0, sink, recent, block_m, block_n)
    return (out, cnt) if return_stats else out


# ----------------------------------------------------------------------------- cache form
class DuoKVCache:
    """Per KV head: a growing full cache (retrieval) or a ``sink + recent`` slot ring (streaming).

    Retrieval heads live in ``full_k/full_v`` ``(batch, n_retrieval, capacity, d)`` (capacity
    doubles when full); streaming heads in ``ring_k/ring_v`` ``(batch, n_streaming, sink +
    recent, d)`` - constant memory - with token ``pos`` at slot
    ``ring_buffer_address(pos, sink, recent)``. :meth:`step` attends ``C`` new queries at
    positions ``length .. length + C - 1`` to ``[cache || chunk]`` under each head's mask, then
    stores the chunk (ring: only the chunk's survivors, as golden's ``StreamingKVCache``).
    """

    def __init__(self, batch: int, retrieval, head_dim: int, sink: int, recent: int, *,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 backend: str = "triton", block_m: int = 32, block_n: int = 32,
                 capacity: int = 64) -> None:
        _check_options(sink, recent, backend, block_m, block_n)
        _check_int("batch", batch, 1)
        _check_int("capacity", capacity, 1)
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim not in (
                16, 32, 64, 128):
            raise ValueError(f"head_dim must be a power of two in [16, 128], got {head_dim!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype}")
        flags = _check_retrieval(retrieval, None)
        if not flags:
            raise ValueError("retrieval must name at least one KV head, got 0 entries")
        self.retrieval, self.sink, self.recent = flags, sink, recent
        self.batch, self.head_dim, self.dtype = batch, head_dim, dtype
        self.device = torch.device(device)
        self.backend, self.block_m, self.block_n = backend, block_m, block_n
        self.length = 0
        self._ret = [h for h, r in enumerate(flags) if r]
        self._str = [h for h, r in enumerate(flags) if not r]
        self._hmap = [self._ret.index(h) if r else self._str.index(h) for h, r in enumerate(flags)]
        kw = {"dtype": dtype, "device": self.device}
        self.full_k = torch.zeros(batch, len(self._ret), capacity, head_dim, **kw)
        self.full_v = torch.zeros_like(self.full_k)
        self.ring_k = torch.zeros(batch, len(self._str), sink + recent, head_dim, **kw)
        self.ring_v = torch.zeros_like(self.ring_k)
        self.last_stats: torch.Tensor | None = None  # blocks visited by the last Triton step

    @property
    def kv_heads(self) -> int:
        return len(self.retrieval)

    def held_tokens(self) -> list[int]:
        """Tokens stored per KV head (``length`` or ``min(length, sink + recent)``)."""
        ring = min(self.length, self.sink + self.recent)
        return [self.length if r else ring for r in self.retrieval]

    def _check_step(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        _check_tensors(q, k, v, self.backend)
        want = (self.batch, self.kv_heads, q.shape[2], self.head_dim)
        if tuple(k.shape) != want:
            raise ValueError(f"k has shape {tuple(k.shape)}, expected (batch={self.batch}, "
                             f"kv_heads={self.kv_heads}, chunk={q.shape[2]}, "
                             f"head_dim={self.head_dim})")
        if k.dtype != self.dtype or k.device != self.device:
            raise ValueError(f"k is {k.dtype} on {k.device}, the cache holds {self.dtype} on "
                             f"{self.device}")

    def _grow(self, need: int) -> None:
        cap = self.full_k.shape[2]
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        pad = (self.batch, len(self._ret), cap - self.full_k.shape[2], self.head_dim)
        zeros = torch.zeros(pad, dtype=self.dtype, device=self.device)
        self.full_k = torch.cat([self.full_k, zeros], dim=2)
        self.full_v = torch.cat([self.full_v, zeros], dim=2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        n, c = self.length, q.shape[2]
        if self.backend == "torch":
            ring_pos = torch.tensor(_ring_positions(n, self.sink, self.recent))
            keys, vals, kpos = [], [], []
            for h, r in enumerate(self.retrieval):
                i = self._hmap[h]
                ck = self.full_k[:, i, :n] if r else self.ring_k[:, i]
                cv = self.full_v[:, i, :n] if r else self.ring_v[:, i]
                keys.append(torch.cat([ck, k[:, h]], dim=1))
                vals.append(torch.cat([cv, v[:, h]], dim=1))
                kpos.append(torch.cat([torch.arange(n) if r else ring_pos,
                                       torch.arange(n, n + c)]))
            width = max(x.shape[0] for x in kpos)  # pad heads to one key count (pos -1: empty)
            for h in range(self.kv_heads):
                extra = width - kpos[h].shape[0]
                kpos[h] = torch.cat([kpos[h], torch.full((extra,), -1)])
                keys[h] = torch.nn.functional.pad(keys[h], (0, 0, 0, extra))
                vals[h] = torch.nn.functional.pad(vals[h], (0, 0, 0, extra))
            return _torch_attend(q, torch.stack(keys, 1), torch.stack(vals, 1),
                                 torch.stack(kpos).to(q.device),
                                 torch.arange(n, n + c, device=q.device), self.retrieval,
                                 self.sink, self.recent)
        k, v = k.contiguous(), v.contiguous()
        dummy = torch.zeros(1, 1, 1, self.head_dim, dtype=self.dtype, device=self.device)
        lin = (self.full_k, self.full_v) if self._ret else (dummy, dummy)
        ring = (self.ring_k, self.ring_v) if self._str else (dummy, dummy)
        out, cnt = _launch(q, self.retrieval, self._hmap, lin, ring, (k, v), n, (n, 0), n, c,
                           self.sink, self.recent, self.block_m, self.block_n)
        self.last_stats = cnt
        return out

    def _store(self, k: torch.Tensor, v: torch.Tensor) -> None:
        n, c = self.length, k.shape[2]
        if self._ret:
            self._grow(n + c)
            self.full_k[:, :, n:n + c] = k[:, self._ret]
            self.full_v[:, :, n:n + c] = v[:, self._ret]
        if self._str:
            keep = [i for i in range(c) if n + i < self.sink or n + i >= n + c - self.recent]
            slots = [ring_buffer_address(n + i, self.sink, self.recent) for i in keep]
            hs = torch.tensor(self._str, device=self.device)
            idx = torch.tensor(keep, device=self.device)
            self.ring_k[:, :, slots] = k[:, hs][:, :, idx]
            self.ring_v[:, :, slots] = v[:, hs][:, :, idx]

    @tensor_function("q", "k", "v")
    def step(self, q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
        """Attend a chunk of ``C`` new tokens (``C == 1``: decode), then store it."""
        self._check_step(q, k, v)
        out = self._attend(q, k, v)
        self._store(k, v)
        self.length += q.shape[2]
        return out

    @tensor_function("q", "k", "v")
    def prefill(self, q: ArrayLike, k: ArrayLike, v: ArrayLike,
                chunk: int | None = None) -> ArrayLike:
        """:meth:`step` over ``chunk``-token pieces (``None``: one piece); outputs concatenated."""
        self._check_step(q, k, v)
        t = q.shape[2]
        chunk = t if chunk is None else _check_int("chunk", chunk, 1)
        return torch.cat([self.step(q[:, :, s:s + chunk], k[:, :, s:s + chunk],
                                    v[:, :, s:s + chunk]) for s in range(0, t, chunk)], dim=2)

    @tensor_function("q", "k", "v")
    def decode_step(self, q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
        """One new token: ``q`` ``(batch, q_heads, 1, d)``, ``k``/``v`` ``(batch, kv, 1, d)``."""
        if isinstance(q, torch.Tensor) and q.dim() == 4 and q.shape[2] != 1:
            raise ValueError(f"decode_step takes one token, got q with {q.shape[2]} tokens")
        return self.step(q, k, v)


@tensor_function("q", "k", "v")
def prefill(q: ArrayLike, k: ArrayLike, v: ArrayLike, retrieval, sink: int, recent: int,
            *, chunk: int | None = None, backend: str = "triton", block_m: int = 32,
            block_n: int = 32, capacity: int = 64) -> tuple[ArrayLike, DuoKVCache]:
    """Prefill a new :class:`DuoKVCache` with a prompt; returns ``(output, cache)``."""
    _check_options(sink, recent, backend, block_m, block_n)
    _check_tensors(q, k, v, backend)
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"prefill needs tq == tk, got tq={q.shape[2]}, tk={k.shape[2]}")
    flags = _check_retrieval(retrieval, k.shape[1])
    cache = DuoKVCache(k.shape[0], flags, k.shape[3], sink, recent, dtype=k.dtype,
                       device=k.device, backend=backend, block_m=block_m, block_n=block_n,
                       capacity=capacity)
    return cache.prefill(q, k, v, chunk), cache


@tensor_function("q", "k", "v")
def decode_step(cache: DuoKVCache, q: ArrayLike, k: ArrayLike, v: ArrayLike) -> ArrayLike:
    """One decode step on ``cache`` (see :meth:`DuoKVCache.decode_step`)."""
    if not isinstance(cache, DuoKVCache):
        raise ValueError(f"cache must be a DuoKVCache, got {type(cache).__name__}")
    return cache.decode_step(q, k, v)
