"""KV caches: ring-buffer addressing and bit-exact chunked prefill + decode."""

from __future__ import annotations

import pytest
import torch

from golden.duo_attention import duo_attention, full_attention, streaming_attention
from golden.kv_cache import (
    DuoCache,
    FullKVCache,
    StreamingKVCache,
    chunked,
    ring_buffer_address,
)


def _qkv(b=2, hq=4, hkv=2, t=40, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, hq, t, d, generator=g), torch.randn(b, hkv, t, d, generator=g),
            torch.randn(b, hkv, t, d, generator=g))


def test_ring_buffer_address_wraps():
    sink, recent = 3, 4
    got = [ring_buffer_address(p, sink, recent) for p in range(13)]
    assert got == [0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4]
    assert [ring_buffer_address(p, 0, 2) for p in range(5)] == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match=r"recent must be an int >= 1, got 0"):
        ring_buffer_address(5, 2, 0)
    with pytest.raises(ValueError, match=r"pos must be an int >= 0, got -1"):
        ring_buffer_address(-1, 2, 4)


def test_streaming_cache_holds_sink_and_last_recent():
    _, k, v = _qkv(b=1, hq=2, hkv=2, t=11)
    q = torch.zeros(1, 2, 11, 8)
    c = StreamingKVCache(1, 2, 8, sink=2, recent=3)
    c.prefill(q, k, v, chunk=4)
    assert c.held_positions() == [0, 1, 8, 9, 10]
    assert c.slots_in_order() == [0, 1, 2, 3, 4]  # 8 -> 2 + (6 mod 3) = 2
    k_held = c.k[:, :, c.slots_in_order()]
    assert torch.equal(k_held, k[:, :, [0, 1, 8, 9, 10]])
    c.step(q[:, :, :1], k[:, :, :1], v[:, :, :1])  # position 11 overwrites position 8's slot
    assert c.held_positions() == [0, 1, 9, 10, 11]
    assert c.slots_in_order() == [0, 1, 3, 4, 2]
    assert c.k.shape[2] == 5  # constant memory: sink + recent slots


@pytest.mark.parametrize("chunk", [1, 3, 5, 16, 40])
@pytest.mark.parametrize("sink,recent", [(4, 8), (0, 5), (2, 64)])
def test_streaming_prefill_then_decode_is_exact(chunk, sink, recent):
    q, k, v = _qkv(t=40)
    ref = streaming_attention(q, k, v, sink, recent)
    c = StreamingKVCache(2, 2, 8, sink, recent)
    out = c.prefill(q[:, :, :30], k[:, :, :30], v[:, :, :30], chunk)
    for t in range(30, 40):  # decode after prefill
        out = torch.cat([out, c.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])], 2)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("chunk", [1, 7, 40])
def test_full_cache_exact(chunk):
    q, k, v = _qkv(hq=2, hkv=1, t=40)
    c = FullKVCache(2, 1, 8)
    out = c.prefill(q[:, :, :33], k[:, :, :33], v[:, :, :33], chunk)
    out = torch.cat([out, chunked(c.step, q[:, :, 33:], k[:, :, 33:], v[:, :, 33:], 1)], 2)
    assert torch.equal(out, full_attention(q, k, v))
    assert c.length == 40 and c.k.shape[2] == 40


@pytest.mark.parametrize("chunk", [4, 9])
def test_duo_cache_exact(chunk):
    q, k, v = _qkv(hq=8, hkv=4, t=36)
    ret = [True, False, False, True]
    ref = duo_attention(q, k, v, ret, 2, 6)
    c = DuoCache(2, ret, 8, 2, 6)
    out = c.prefill(q[:, :, :30], k[:, :, :30], v[:, :, :30], chunk)
    for t in range(30, 36):
        out = torch.cat([out, c.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])], 2)
    assert torch.equal(out, ref)
    assert c.held_tokens() == [36, 8, 8, 36]


def test_bad_input():
    q, k, v = _qkv()
    c = StreamingKVCache(2, 2, 8, 2, 4)
    with pytest.raises(ValueError, match=r"k has shape \(2, 3, 40, 8\), expected"):
        c.step(q, torch.zeros(2, 3, 40, 8), torch.zeros(2, 3, 40, 8))
    with pytest.raises(ValueError, match=r"q has shape \(2, 3, 40, 8\).*multiple of kv_heads=2"):
        c.step(torch.zeros(2, 3, 40, 8), k, v)
    bad = k.clone()
    bad[1, 1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"k holds a non-finite value"):
        c.step(q, bad, v)
    with pytest.raises(ValueError, match=r"chunk must be an int >= 1, got 0"):
        c.prefill(q, k, v, 0)
    with pytest.raises(ValueError, match=r"sink must be an int >= 0, got -2"):
        StreamingKVCache(1, 1, 8, -2, 4)
    with pytest.raises(ValueError, match=r"batch must be an int >= 1, got 0"):
        FullKVCache(0, 1, 8)
    with pytest.raises(ValueError, match=r"kv_heads=2 on axis 1"):
        DuoCache(2, [True, False], 8, 2, 4).step(torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 1, 8),
                                                 torch.zeros(2, 4, 1, 8))
