"""DuoAttention float references: masks, full / streaming / duo / mixed, GQA, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from golden.duo_attention import (
    causal_mask,
    duo_attention,
    full_attention,
    mixed_attention,
    streaming_attention,
    streaming_mask,
    visible_keys,
)


def _qkv(b=2, hq=4, hkv=2, tq=12, tk=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, hq, tq, d, generator=g), torch.randn(b, hkv, tk, d, generator=g),
            torch.randn(b, hkv, tk, d, generator=g))


def _naive(q, k, v, mask):
    """Textbook masked attention with explicit GQA expansion (float64)."""
    g = q.shape[1] // k.shape[1]
    k2 = k.double().repeat_interleave(g, dim=1)
    v2 = v.double().repeat_interleave(g, dim=1)
    s = q.double() @ k2.transpose(-1, -2) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask, float("-inf"))
    return (torch.softmax(s, -1) @ v2).float()


def test_streaming_mask_by_hand():
    m = streaming_mask(6, 6, sink=1, recent=2).int().tolist()
    assert m == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 0, 1, 1, 0],
        [1, 0, 0, 0, 1, 1],
    ]
    # decode row: query at position 5 of 6
    assert streaming_mask(1, 6, 1, 2).int().tolist() == [[1, 0, 0, 0, 1, 1]]
    assert visible_keys(5, 1, 2) == [0, 4, 5]
    assert visible_keys(2, 4, 16) == [0, 1, 2]


def test_causal_mask_last_positions():
    assert causal_mask(2, 4).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("tq", [1, 5, 12])
def test_against_naive(hq, hkv, tq):
    q, k, v = _qkv(hq=hq, hkv=hkv, tq=tq, tk=12)
    torch.testing.assert_close(full_attention(q, k, v), _naive(q, k, v, causal_mask(tq, 12)),
                               atol=1e-5, rtol=1e-5)
    sm = streaming_mask(tq, 12, 2, 3)
    torch.testing.assert_close(streaming_attention(q, k, v, 2, 3), _naive(q, k, v, sm),
                               atol=1e-5, rtol=1e-5)
    nc = torch.ones(tq, 12, dtype=torch.bool)
    torch.testing.assert_close(full_attention(q, k, v, causal=False), _naive(q, k, v, nc),
                               atol=1e-5, rtol=1e-5)


def test_duo_extremes_equal_full_and_streaming():
    q, k, v = _qkv(hq=8, hkv=4, tq=16, tk=16)
    assert torch.equal(duo_attention(q, k, v, [True] * 4, 2, 4), full_attention(q, k, v))
    assert torch.equal(duo_attention(q, k, v, [False] * 4, 2, 4),
                       streaming_attention(q, k, v, 2, 4))


def test_duo_per_head_selection_gqa():
    q, k, v = _qkv(hq=6, hkv=3, tq=10, tk=10)
    ret = [True, False, True]
    out = duo_attention(q, k, v, torch.tensor(ret), 1, 3)
    full, stream = full_attention(q, k, v), streaming_attention(q, k, v, 1, 3)
    for h in range(3):
        ref = full if ret[h] else stream
        assert torch.equal(out[:, 2 * h:2 * h + 2], ref[:, 2 * h:2 * h + 2])
    assert not torch.allclose(out, full)


def test_streaming_with_large_window_equals_full():
    q, k, v = _qkv(tq=12, tk=12)
    assert torch.equal(streaming_attention(q, k, v, 0, 12), full_attention(q, k, v))
    assert torch.equal(streaming_attention(q, k, v, 3, 100), full_attention(q, k, v))


def test_decode_row_matches_prefill_row():
    q, k, v = _qkv(tq=12, tk=12)
    full = full_attention(q, k, v)
    assert torch.equal(full_attention(q[:, :, -1:], k, v), full[:, :, -1:])
    st = streaming_attention(q, k, v, 2, 3)
    assert torch.equal(streaming_attention(q[:, :, 7:8], k[:, :, :8], v[:, :, :8], 2, 3),
                       st[:, :, 7:8])


def test_mixed_attention():
    q, k, v = _qkv(hq=4, hkv=2, tq=12, tk=12)
    full, stream = full_attention(q, k, v), streaming_attention(q, k, v, 1, 4)
    torch.testing.assert_close(mixed_attention(q, k, v, torch.ones(2), 1, 4), full)
    torch.testing.assert_close(mixed_attention(q, k, v, torch.zeros(2), 1, 4), stream)
    a = torch.tensor([0.25, 0.75], requires_grad=True)
    out = mixed_attention(q, k, v, a, 1, 4)
    ref = torch.cat([0.75 * stream[:, :2] + 0.25 * full[:, :2],
                     0.25 * stream[:, 2:] + 0.75 * full[:, 2:]], dim=1)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert a.grad is not None and torch.all(a.grad != 0)


@pytest.mark.parametrize("fn,args,match", [
    (full_attention, (torch.zeros(2, 4, 3), torch.zeros(2, 2, 3, 4), torch.zeros(2, 2, 3, 4)),
     r"q must be 4-D.*\(2, 4, 3\)"),
    (full_attention, (torch.zeros(1, 3, 3, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)),
     r"q_heads \(3\) must be a multiple of kv_heads \(2\)"),
    (full_attention, (torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 2, 4)),
     r"k and v shapes differ"),
    (full_attention, (torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5), torch.zeros(1, 2, 3, 5)),
     r"k head dim 5 != q head dim 4"),
    (full_attention, (torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)),
     r"tq=5.*tk=3"),
])
def test_bad_shapes(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


def test_bad_values():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"sink must be >= 0, got -1"):
        streaming_attention(q, k, v, -1, 4)
    with pytest.raises(ValueError, match=r"recent must be >= 1, got 0"):
        streaming_attention(q, k, v, 2, 0)
    with pytest.raises(ValueError, match=r"recent must be >= 1, got -3"):
        streaming_mask(4, 4, 0, -3)
    with pytest.raises(ValueError, match=r"retrieval has 3 entries, expected kv_heads=2"):
        duo_attention(q, k, v, [True, False, True], 2, 4)
    with pytest.raises(ValueError, match=r"alpha has shape \(3,\), expected \(2,\)"):
        mixed_attention(q, k, v, torch.ones(3), 2, 4)
    bad = q.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"q holds a non-finite value \(nan\)"):
        full_attention(bad, k, v)
    bad = v.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"v holds a non-finite value \(inf\)"):
        streaming_attention(q, k, bad, 1, 2)
    with pytest.raises(ValueError, match=r"alpha holds a non-finite value"):
        mixed_attention(q, k, v, torch.tensor([0.5, float("nan")]), 2, 4)
