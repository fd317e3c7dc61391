"""Triton kernels behind :mod:`sw.duo_attention` (import that module, not this one).

One kernel, :func:`_duo_attn_kernel`, serves the stateless chunked-prefill form and the
cache-backed prefill / decode form. A program owns one ``(batch, q-head)`` pair and ``BLOCK_M``
consecutive queries at absolute positions ``q_pos0 + i``. It runs a flash-attention style online
softmax (fp32 running max ``m``, normaliser ``l`` and accumulator) over up to three key sources:

``lin``
    keys at positions ``0 .. n - 1`` stored contiguously (the whole ``k`` of the stateless form,
    or a retrieval head's full cache). ``n`` is chosen per head type (``lin_n_ret`` /
    ``lin_n_str``).
``ring``
    a streaming head's ``sink + recent`` slot buffer written with
    :func:`golden.kv_cache.ring_buffer_address`; it holds ``ring_n`` past tokens. A slot's
    position is recovered arithmetically: ``s`` if ``s < sink``, else the latest
    ``pos <= ring_n - 1`` with ``(pos - sink) mod recent == s - sink``.
``chunk``
    the new tokens (positions ``q_pos0 .. q_pos0 + chunk_n - 1``) of the cache-backed form.

Visibility of key position ``j`` to query position ``p`` is ``j <= p`` (retrieval head) and in
addition ``j < sink or p - j < recent`` (streaming head); the per-KV-head flag picks one.

**Block skipping.** For a contiguous source the program visits only key blocks holding a key
visible to one of its queries ``p_lo .. p_hi``: the sink blocks ``[0, cdiv(sink, BLOCK_N))`` and
the window blocks covering ``[p_lo - recent + 1, p_hi]`` (streaming heads), or all blocks up to
``p_hi`` (retrieval heads). A streaming head thus costs ``O(sink + recent + BLOCK_M)`` keys per
query block, independent of the sequence length. The ring (``sink + recent`` slots, constant)
is read whole, minus its ring part when no ring entry is visible to the block. Every visited
block adds one to a per-program counter written to ``cnt_ptr``.
"""

from __future__ import annotations

from . import _runtime  # noqa: F401 - first: sets TRITON_INTERPRET before triton is imported

# isort: split
import triton
import triton.language as tl

__all__: list[str] = []  # private module: the kernels are reached through sw.duo_attention


@triton.jit
def _attend_block(acc, m_i, l_i, q, k_ptrs, v_ptrs, kvalid, kpos, qpos, is_ret, sink, recent,
                  scale):
    """One online-softmax update with a ``BLOCK_N`` block of keys at positions ``kpos``."""
    k = tl.load(k_ptrs, mask=kvalid[:, None], other=0.0).to(tl.float32)
    v = tl.load(v_ptrs, mask=kvalid[:, None], other=0.0).to(tl.float32)
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
    window = (kpos[None, :] < sink) | (qpos[:, None] - kpos[None, :] < recent)
    vis = kvalid[None, :] & (kpos[None, :] <= qpos[:, None]) & (is_ret | window)
    s = tl.where(vis, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows that saw nothing yet
    alpha = tl.exp(m_i - m_use)
    p = tl.exp(s - m_use[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
    return acc, m_new, l_i


@triton.jit
def _attend_linear(acc, m_i, l_i, n_vis, q, k_base, v_base, stride_t, n_keys, pos0, p_lo, p_hi,
                   qpos, is_ret, sink, recent, scale, offs_n, offs_d, BLOCK_N: tl.constexpr):
    """Contiguous keys ``0 .. n_keys - 1`` at positions ``pos0 + j``; masked blocks skipped."""
    j_hi = tl.maximum(tl.minimum(n_keys - 1, p_hi - pos0), -1)  # last key any row may see
    j_sink = tl.minimum(tl.maximum(sink - pos0, 0), j_hi + 1)  # keys that are sinks
    a_end = tl.where(is_ret, 0, (j_sink + BLOCK_N - 1) // BLOCK_N)
    j_win = tl.maximum(p_lo - recent + 1 - pos0, 0)  # first key of the first row's window
    b_lo = tl.where(is_ret, 0, tl.maximum(j_win // BLOCK_N, a_end))
    b_hi = (j_hi + BLOCK_N) // BLOCK_N  # j_hi >= -1: numerator never negative
    for blk in range(0, a_end):  # streaming heads: the sink blocks
        jj = blk * BLOCK_N + offs_n
        ptr = jj[:, None] * stride_t + offs_d[None, :]
        acc, m_i, l_i = _attend_block(acc, m_i, l_i, q, k_base + ptr, v_base + ptr,
                                      jj < n_keys, pos0 + jj, qpos, is_ret, sink, recent, scale)
        n_vis += 1
    for blk in range(b_lo, b_hi):  # the causal range (retrieval) or the recent window
        jj = blk * BLOCK_N + offs_n
        ptr = jj[:, None] * stride_t + offs_d[None, :]
        acc, m_i, l_i = _attend_block(acc, m_i, l_i, q, k_base + ptr, v_base + ptr,
                                      jj < n_keys, pos0 + jj, qpos, is_ret, sink, recent, scale)
        n_vis += 1
    return acc, m_i, l_i, n_vis


@triton.jit
def _attend_ring(acc, m_i, l_i, n_vis, q, k_base, v_base, stride_t, n_past, p_lo, qpos, is_ret,
                 sink, recent, scale, offs_n, offs_d, BLOCK_N: tl.constexpr):
    """The ``sink + recent`` slot buffer holding ``n_past`` tokens (streaming heads only)."""
    n_sinks = tl.minimum(n_past, sink)
    ring_live = n_past - 1 > p_lo - recent  # the newest entry is visible to the first row
    hi = tl.where(ring_live, tl.minimum(n_past, sink + recent), n_sinks)
    hi = tl.where(is_ret, 0, hi)
    for blk in range(0, (hi + BLOCK_N - 1) // BLOCK_N):
        ss = blk * BLOCK_N + offs_n
        back = tl.maximum(n_past - 1 - ss, 0)  # n_past - 1 - sink - r, r = ss - sink
        pos = tl.where(ss < sink, ss, ss + recent * (back // recent))
        ptr = ss[:, None] * stride_t + offs_d[None, :]
        acc, m_i, l_i = _attend_block(acc, m_i, l_i, q, k_base + ptr, v_base + ptr, ss < hi,
                                      pos, qpos, is_ret, sink, recent, scale)
        n_vis += 1
    return acc, m_i, l_i, n_vis


@triton.jit
def _duo_attn_kernel(q_ptr, o_ptr, cnt_ptr, flag_ptr, hmap_ptr,
                     lk_ptr, lv_ptr, rk_ptr, rv_ptr, ck_ptr, cv_ptr,
                     sq_b, sq_h, sq_t, so_b, so_h, so_t,
                     sl_b, sl_h, sl_t, sr_b, sr_h, sr_t, sc_b, sc_h, sc_t,
                     n_q_heads, group, tq, q_pos0, lin_n_ret, lin_n_str, ring_n, chunk_n,
                     sink, recent, scale, n_mblk,
                     HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Grid ``(cdiv(tq, BLOCK_M), batch * q_heads)``; see the module docstring."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // n_q_heads
    hq = pid_bh % n_q_heads
    kvh = hq // group
    is_ret = tl.load(flag_ptr + kvh) != 0
    src = tl.load(hmap_ptr + kvh)  # this head's index inside its cache (lin or ring)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = offs_m < tq
    qpos = q_pos0 + offs_m
    p_lo = q_pos0 + pid_m * BLOCK_M
    p_hi = q_pos0 + tl.minimum((pid_m + 1) * BLOCK_M, tq) - 1
    q = tl.load(q_ptr + b * sq_b + hq * sq_h + offs_m[:, None] * sq_t + offs_d[None, :],
                mask=rows[:, None], other=0.0).to(tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    n_vis = tl.full((), 0, dtype=tl.int32)
    lin_n = tl.where(is_ret, lin_n_ret, lin_n_str)
    acc, m_i, l_i, n_vis = _attend_linear(
        acc, m_i, l_i, n_vis, q, lk_ptr + b * sl_b + src * sl_h, lv_ptr + b * sl_b + src * sl_h,
        sl_t, lin_n, 0, p_lo, p_hi, qpos, is_ret, sink, recent, scale, offs_n, offs_d, BLOCK_N)
    acc, m_i, l_i, n_vis = _attend_ring(
        acc, m_i, l_i, n_vis, q, rk_ptr + b * sr_b + src * sr_h, rv_ptr + b * sr_b + src * sr_h,
        sr_t, ring_n, p_lo, qpos, is_ret, sink, recent, scale, offs_n, offs_d, BLOCK_N)
    acc, m_i, l_i, n_vis = _attend_linear(
        acc, m_i, l_i, n_vis, q, ck_ptr + b * sc_b + kvh * sc_h, cv_ptr + b * sc_b + kvh * sc_h,
        sc_t, chunk_n, q_pos0, p_lo, p_hi, qpos, is_ret, sink, recent, scale, offs_n, offs_d,
        BLOCK_N)
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)  # only padding rows (never stored) have l == 0
    out = acc / l_safe[:, None]
    tl.store(o_ptr + b * so_b + hq * so_h + offs_m[:, None] * so_t + offs_d[None, :], out,
             mask=rows[:, None])
    tl.store(cnt_ptr + pid_bh * n_mblk + pid_m, n_vis)
