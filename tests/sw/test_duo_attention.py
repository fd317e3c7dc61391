"""Triton DuoAttention (interpreted on a CPU) against golden.duo_attention / golden.kv_cache.

Tolerance: 1e-5 absolute on float32 outputs for every comparison with golden (the kernels sum
the softmax in key blocks with an online max; golden sums each row in one go, so results agree
to float32 rounding, ~5e-7 observed on N(0, 1) inputs), fp16/bf16 inputs included (both sides
compute in float32 from the same values).
"""

from __future__ import annotations

import math

import pytest
import torch

from golden import duo_attention as G
from golden.kv_cache import DuoCache
from sw.duo_attention import DuoKVCache, decode_step, duo_attention, prefill

TOL = 1e-5
BACKENDS = ["triton", "torch"]


def _qkv(b, hq, hkv, tq, tk, d, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, tq, d, generator=gen).to(dtype)
    k = torch.randn(b, hkv, tk, d, generator=gen).to(dtype)
    v = torch.randn(b, hkv, tk, d, generator=gen).to(dtype)
    return q, k, v


def _err(a, b):
    return (a - b).abs().max().item()


# (batch, q_heads, kv_heads, tq, tk, d, retrieval, sink, recent)
CASES = {
    "mha": (1, 2, 2, 100, 100, 32, [True, False], 4, 16),
    "gqa2": (2, 4, 2, 70, 70, 32, [False, True], 3, 20),
    "gqa4_chunk": (1, 8, 2, 40, 130, 64, [False, True], 8, 24),
    "no_sink_recent1": (1, 2, 2, 37, 37, 32, [False, True], 0, 1),
    "window_covers_all": (1, 2, 2, 50, 50, 32, [False, False], 32, 40),
    "one_query": (1, 4, 2, 1, 77, 32, [True, False], 5, 9),
}


class TestStateless:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("case", list(CASES))
    def test_matches_golden(self, case, backend):
        b, hq, hkv, tq, tk, d, ret, sink, recent = CASES[case]
        q, k, v = _qkv(b, hq, hkv, tq, tk, d, seed=len(case))
        out = duo_attention(q, k, v, ret, sink, recent, backend=backend)
        assert out.dtype == torch.float32 and out.shape == q.shape
        assert _err(out, G.duo_attention(q, k, v, ret, sink, recent)) < TOL

    def test_extremes_equal_full_and_streaming(self):
        q, k, v = _qkv(1, 4, 2, 65, 65, 32, seed=1)
        full = duo_attention(q, k, v, [True, True], 2, 8)
        assert _err(full, G.full_attention(q, k, v)) < TOL
        stream = duo_attention(q, k, v, torch.tensor([False, False]), 2, 8)
        assert _err(stream, G.streaming_attention(q, k, v, 2, 8)) < TOL

    def test_block_sizes_and_head_dim_64(self):
        q, k, v = _qkv(1, 2, 1, 45, 90, 64, seed=2)
        ref = G.duo_attention(q, k, v, [False], 6, 10)
        assert _err(duo_attention(q, k, v, [False], 6, 10, block_m=16, block_n=64), ref) < TOL
        assert _err(duo_attention(q, k, v, [False], 6, 10, block_m=64, block_n=16), ref) < TOL

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_inputs(self, dtype):
        q, k, v = _qkv(1, 2, 2, 40, 40, 32, seed=3, dtype=dtype)
        out = duo_attention(q, k, v, [True, False], 2, 6)
        assert _err(out, G.duo_attention(q, k, v, [True, False], 2, 6)) < TOL

    def test_strided_inputs(self):
        q, k, v = _qkv(1, 2, 2, 48, 48, 32, seed=4)
        qt = q.transpose(1, 2).contiguous().transpose(1, 2)
        kt = k.transpose(2, 3).contiguous().transpose(2, 3)
        assert not qt.is_contiguous() and not kt.is_contiguous()
        out = duo_attention(qt, kt, v, [False, True], 4, 8)
        assert _err(out, G.duo_attention(q, k, v, [False, True], 4, 8)) < TOL


def _visible_blocks(mask: torch.Tensor, bm: int, bn: int) -> torch.Tensor:
    """Per query block: how many ``bn``-key blocks hold at least one visible key."""
    tq, tk = mask.shape
    counts = []
    for r in range(0, tq, bm):
        rows = mask[r:r + bm]
        counts.append(sum(bool(rows[:, c:c + bn].any()) for c in range(0, tk, bn)))
    return torch.tensor(counts, dtype=torch.int32)


class TestBlockSkipping:
    """The per-program block counter: timing-free evidence that masked blocks are skipped."""

    @pytest.mark.parametrize("tq,tk,sink,recent", [(256, 256, 4, 32), (100, 200, 40, 20),
                                                   (64, 64, 0, 1)])
    def test_visited_blocks_are_exactly_the_nonempty_ones(self, tq, tk, sink, recent):
        q, k, v = _qkv(1, 2, 2, tq, tk, 32, seed=5)
        out, cnt = duo_attention(q, k, v, [True, False], sink, recent, return_stats=True)
        assert _err(out, G.duo_attention(q, k, v, [True, False], sink, recent)) < TOL
        assert torch.equal(cnt[0, 0], _visible_blocks(G.causal_mask(tq, tk), 32, 32))
        assert torch.equal(cnt[0, 1],
                           _visible_blocks(G.streaming_mask(tq, tk, sink, recent), 32, 32))

    def test_streaming_cost_independent_of_length(self):
        sink, recent, bm, bn = 4, 32, 32, 32
        bound = math.ceil(sink / bn) + math.ceil((recent + bm - 1) / bn) + 1
        worst = []
        for t in (128, 256):
            q, k, v = _qkv(1, 2, 2, t, t, 32, seed=t)
            _, cnt = duo_attention(q, k, v, [True, False], sink, recent, return_stats=True)
            n = t // bm
            assert cnt[0, 0].tolist() == list(range(1, n + 1))  # retrieval: whole causal range
            worst.append(int(cnt[0, 1].max()))
            assert int(cnt[0, 1].sum()) <= bound * n  # streaming: linear in t, not quadratic
        assert worst == [3, 3] and worst[0] <= bound  # per query block: constant in t


def _run_cache(ret, sink, recent, total, n_prompt, chunk, backend, hq=4, seed=7, b=1):
    """Prefill ``n_prompt`` tokens, decode the rest; errors vs golden on the full sequence."""
    hkv = len(ret)
    q, k, v = _qkv(b, hq, hkv, total, total, 32, seed=seed)
    ref = G.duo_attention(q, k, v, ret, sink, recent)
    out, cache = prefill(q[:, :, :n_prompt], k[:, :, :n_prompt], v[:, :, :n_prompt], ret, sink,
                         recent, chunk=chunk, backend=backend, capacity=16)
    errs = [_err(out, ref[:, :, :n_prompt])]
    for i in range(n_prompt, total):
        s = slice(i, i + 1)
        errs.append(_err(decode_step(cache, q[:, :, s], k[:, :, s], v[:, :, s]), ref[:, :, s]))
    return errs, cache, (q, k, v)


class TestCache:
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_prefill_then_decode_matches_golden_every_step(self, backend):
        # recent 8 < prompt: the ring wraps several times during chunks and decode
        errs, cache, _ = _run_cache([False, True], 3, 8, 56, 40, 13, backend, b=2)
        assert max(errs) < TOL, errs
        assert cache.length == 56 and cache.held_tokens() == [11, 56]
        assert tuple(cache.ring_k.shape) == (2, 1, 11, 32)  # constant streaming memory

    def test_mha_all_streaming_one_token_chunks(self):
        errs, cache, _ = _run_cache([False, False], 2, 5, 20, 6, 1, "triton", hq=2)
        assert max(errs) < TOL and cache.full_k.shape[1] == 0

    def test_mha_all_retrieval_grows(self):
        errs, cache, _ = _run_cache([True, True], 2, 5, 40, 30, 30, "triton", hq=2)
        assert max(errs) < TOL and cache.full_k.shape[2] >= 40 and cache.ring_k.shape[1] == 0

    def test_window_larger_than_sequence(self):
        errs, _, _ = _run_cache([False, True], 16, 64, 45, 33, 16, "triton", hq=8)  # G = 4
        assert max(errs) < TOL

    def test_ring_layout_equals_golden_cache(self):
        ret, sink, recent = [False, True, False], 3, 7
        _, cache, (q, k, v) = _run_cache(ret, sink, recent, 30, 17, 9, "triton", hq=6)
        gold = DuoCache(1, ret, 32, sink, recent)
        gold.prefill(q, k, v, chunk=9)
        for h, i in ((0, 0), (2, 1)):
            assert torch.equal(cache.ring_k[:, i], gold.caches[h].k[:, 0])
            assert torch.equal(cache.ring_v[:, i], gold.caches[h].v[:, 0])
        assert torch.equal(cache.full_k[:, 0, :30], k[:, 1])

    def test_decode_cost_constant_for_streaming(self):
        ret, sink, recent = [True, False], 4, 28
        q, k, v = _qkv(1, 2, 2, 201, 201, 32, seed=8)
        _, cache = prefill(q[:, :, :100], k[:, :, :100], v[:, :, :100], ret, sink, recent,
                           chunk=100)
        seen = []
        for i in (100, 101):
            s = slice(i, i + 1)
            cache.decode_step(q[:, :, s], k[:, :, s], v[:, :, s])
            seen.append(cache.last_stats[0, :, 0].tolist())
        # retrieval: cdiv(n, 32) cache blocks + the new token's block; streaming: ring + token
        assert seen == [[5, 2], [5, 2]]
        cache.step(q[:, :, 102:200], k[:, :, 102:200], v[:, :, 102:200])
        s = slice(200, 201)
        out = cache.decode_step(q[:, :, s], k[:, :, s], v[:, :, s])  # twice the past, same cost
        assert cache.last_stats[0, :, 0].tolist() == [8, 2] and out.shape == (1, 2, 1, 32)


class TestBadInput:
    q, k, v = _qkv(1, 4, 2, 8, 8, 32, seed=0)

    @pytest.mark.parametrize("change,match", [
        (lambda q, k, v: (q[0], k, v), r"q must be 4-D .* got shape \(4, 8, 32\)"),
        (lambda q, k, v: (q, k, v[:, :, :4]), "k and v shapes differ"),
        (lambda q, k, v: (q[:, :3], k, v), r"q_heads \(3\) must be a positive multiple of "
                                           r"kv_heads \(2\)"),
        (lambda q, k, v: (q.double(), k, v), "q dtype must be one of .* got torch.float64"),
        (lambda q, k, v: (q, k.half(), v.half()), "k dtype torch.float16 != q dtype"),
        (lambda q, k, v: (q[..., :24], k[..., :24], v[..., :24]),
         "head_dim must be a power of two in \\[16, 128\\], got 24"),
        (lambda q, k, v: (torch.zeros(1, 4, 8, 256), torch.zeros(1, 2, 8, 256),
                          torch.zeros(1, 2, 8, 256)), "got 256"),
        (lambda q, k, v: (q, k[..., :16], v[..., :16]), "k head_dim 16 != q head_dim 32"),
        (lambda q, k, v: (torch.zeros(1, 4, 9, 32), k, v), "tq=9 queries but k has only tk=8"),
        (lambda q, k, v: (q, k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1)), "k batch 2"),
        (lambda q, k, v: (q.tolist(), k, v), "q must be a numpy array or a torch tensor, got list"),
        (lambda q, k, v: (q, k.to("meta"), v.to("meta")), "k is on meta but q is on cpu"),
    ])
    def test_tensors(self, change, match):
        q, k, v = change(self.q, self.k, self.v)
        with pytest.raises(ValueError, match=match):
            duo_attention(q, k, v, [True, False], 2, 4)

    @pytest.mark.parametrize("kwargs,match", [
        ({"retrieval": [True]}, "retrieval has 1 entries, expected kv_heads=2"),
        ({"retrieval": [True, 2]}, "retrieval entries must be bools .* got 2"),
        ({"retrieval": "ab"}, "retrieval must be a sequence, tensor or array of bools"),
        ({"sink": -1}, "sink must be >= 0, got -1"),
        ({"recent": -3}, "recent must be >= 1, got -3"),
        ({"recent": 0}, "recent must be >= 1, got 0"),
        ({"sink": 2.0}, "sink must be an int, got 2.0"),
        ({"backend": "cuda"}, "backend must be one of"),
        ({"block_n": 24}, "block_n must be a power of two >= 16, got 24"),
        ({"block_m": 8}, "block_m must be >= 16, got 8"),
    ])
    def test_options(self, kwargs, match):
        args = {"retrieval": [True, False], "sink": 2, "recent": 4, **kwargs}
        with pytest.raises(ValueError, match=match):
            duo_attention(self.q, self.k, self.v, **args)

    def test_cache(self):
        q, k, v = self.q, self.k, self.v
        with pytest.raises(ValueError, match="prefill needs tq == tk"):
            prefill(q[:, :, :4], k, v, [True, False], 2, 4)
        _, cache = prefill(q, k, v, [True, False], 2, 4)
        s = slice(0, 1)
        with pytest.raises(ValueError, match="decode_step takes one token, got q with 2"):
            cache.decode_step(q[:, :, :2], k[:, :, :2], v[:, :, :2])
        with pytest.raises(ValueError, match=r"k has shape \(1, 1, 1, 32\), expected"):
            cache.decode_step(q[:, :2, s], k[:, :1, s], v[:, :1, s])
        with pytest.raises(ValueError, match="k is torch.float16 on cpu, the cache holds"):
            cache.decode_step(q[:, :, s].half(), k[:, :, s].half(), v[:, :, s].half())
        with pytest.raises(ValueError, match="cache must be a DuoKVCache"):
            decode_step(object(), q[:, :, s], k[:, :, s], v[:, :, s])
        with pytest.raises(ValueError, match="head_dim must be a power of two"):
            DuoKVCache(1, [True], 48, 2, 4)
        with pytest.raises(ValueError, match="at least one KV head"):
            DuoKVCache(1, [], 32, 2, 4)
        with pytest.raises(ValueError, match="chunk must be >= 1, got 0"):
            cache.prefill(q[:, :, s], k[:, :, s], v[:, :, s], chunk=0)
        assert cache.length == 8  # nothing was stored by the rejected calls
