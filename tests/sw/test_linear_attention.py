"""The Triton Sana linear attention (interpreted on a CPU) against golden.

Tolerance (float32 math, only the summation order differs from golden):
``|o - golden| <= ATOL + RTOL |golden|`` with RTOL = 1e-4, ATOL = 1e-5 for unit-scale inputs
(measured max abs error ~1e-7, i.e. ~300x margin).
"""

import numpy as np
import pytest
import torch

from golden.linear_attention import linear_attention as golden_la
from golden.linear_attention import linear_attention_quadratic
from sw.linear_attention import MAX_HEAD_DIM, linear_attention

RTOL, ATOL = 1e-4, 1e-5


def _qkv(b, h, nq, n, d, dv=None, seed=0, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g) * scale
    k = torch.randn(b, h, n, d, generator=g) * scale
    v = torch.randn(b, h, n, dv or d, generator=g) * scale
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _check(o, q, k, v, eps=1e-8, rtol=RTOL, atol=ATOL):
    ref = golden_la(q, k, v, eps)
    assert o.dtype == torch.float32 and o.shape == ref.shape
    torch.testing.assert_close(o, ref, rtol=rtol, atol=atol)


SHAPES = [
    # (batch, heads, q tokens, kv tokens, head_dim, v head_dim)
    (1, 1, 64, 64, 32, 32),      # one chunk exactly
    (2, 3, 100, 100, 32, 32),    # tokens not a multiple of the 64-token chunk, B/H > 1
    (1, 2, 130, 130, 64, 64),    # largest head dim, 3 chunks with a ragged tail
    (2, 2, 77, 77, 17, 17),      # head dim not a power of two (masked lanes)
    (1, 1, 5, 5, 32, 32),        # fewer tokens than a chunk
    (1, 2, 50, 90, 32, 24),      # Nq != N and Dv != D (golden allows both)
]


class TestLinearAttention:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("backend", ["triton", "torch"])
    def test_matches_golden(self, shape, backend):
        b, h, nq, n, d, dv = shape
        q, k, v = _qkv(b, h, nq, n, d, dv, seed=sum(shape))
        _check(linear_attention(q, k, v, backend=backend), q, k, v)

    def test_matches_quadratic_form(self):
        q, k, v = _qkv(2, 2, 70, 70, 32, seed=3)
        o = linear_attention(q, k, v)
        torch.testing.assert_close(o, linear_attention_quadratic(q, k, v), rtol=RTOL, atol=ATOL)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("backend", ["triton", "torch"])
    def test_half_inputs_upcast(self, dtype, backend):
        q, k, v = _qkv(2, 2, 100, 100, 32, seed=7, dtype=dtype)
        o = linear_attention(q, k, v, backend=backend)
        _check(o, q, k, v)            # golden upcasts the same 16-bit values to float32

    @pytest.mark.parametrize("block_m,block_n", [(16, 16), (128, 128), (32, 64)])
    def test_block_sizes(self, block_m, block_n):
        q, k, v = _qkv(1, 2, 100, 100, 32, seed=11)
        _check(linear_attention(q, k, v, block_m=block_m, block_n=block_n), q, k, v)

    def test_strided_inputs(self):
        g = torch.Generator().manual_seed(5)      # (B, N, H, D) layout viewed as (B, H, N, D)
        q, k, v = (torch.randn(2, 40, 3, 32, generator=g).transpose(1, 2) for _ in range(3))
        assert not q.is_contiguous()
        _check(linear_attention(q, k, v), q, k, v)

    def test_eps_and_large_values(self):
        q, k, v = _qkv(1, 2, 60, 60, 32, seed=2, scale=30.0)
        o = linear_attention(q, k, v, eps=0.0)
        _check(o, q, k, v, eps=0.0, atol=ATOL * 30)
        _check(linear_attention(q, k, v, eps=1e-15), q, k, v, eps=1e-15, atol=ATOL * 30)

    def test_inactive_queries_and_empty_keys(self):
        q, k, v = _qkv(1, 1, 20, 30, 32, seed=4)
        q[:, :, :5] = -q[:, :, :5].abs()           # ReLU kills these queries -> 0 / eps = 0
        o = linear_attention(q, k, v)
        assert (o[:, :, :5] == 0).all()
        _check(o, q, k, v)
        o0 = linear_attention(q, k[:, :, :0], v[:, :, :0])
        assert (o0 == 0).all() and o0.shape == (1, 1, 20, 32)
        assert linear_attention(q[:, :, :0], k, v).shape == (1, 1, 0, 32)

    def test_measured_error_is_far_below_tolerance(self):
        q, k, v = _qkv(2, 3, 100, 100, 32, seed=1)
        err = (linear_attention(q, k, v) - golden_la(q, k, v)).abs().max().item()
        assert err < 1e-6


class TestBadInputs:
    def _ok(self):
        return _qkv(1, 2, 16, 16, 32)

    @pytest.mark.parametrize("backend", ["triton", "torch"])
    def test_errors_before_launch(self, backend):
        q, k, v = self._ok()

        def bad(match, *args, **kw):
            with pytest.raises(ValueError, match=match):
                linear_attention(*args, backend=backend, **kw)

        bad("q must be a numpy array or a torch tensor, got list", q.tolist(), k, v)
        bad(r"k must be 4-D .* got shape \(2, 16, 32\)", q, k[0], v)
        bad("v must be float32, float16 or bfloat16, got torch.float64", q, k, v.double())
        bad("dtypes differ", q, k.half(), v)
        bad(r"batch/heads differ", q, k[:, :1], v[:, :1])
        bad(r"head_dim of q \(32\) and k \(16\) differ", q, k[..., :16], v)
        bad(r"tokens of k \(16\) and v \(8\) differ", q, k, v[:, :, :8])
        big = torch.zeros(1, 2, 16, MAX_HEAD_DIM + 1)
        bad(r"q head_dim must be in 1..64, got 65", big, big, v)
        bad(r"v head_dim must be in 1..64, got 65", q, k, big)
        bad("eps must be a finite number >= 0, got -1.0", q, k, v, eps=-1.0)
        bad("eps must be a finite number >= 0, got nan", q, k, v, eps=float("nan"))
        bad("block_n must be a power of two in 16..256, got 24", q, k, v, block_n=24)
        bad("block_m must be a power of two in 16..256, got 8", q, k, v, block_m=8)
        for name, idx in (("q", 0), ("k", 1), ("v", 2)):
            t = [q.clone(), k.clone(), v.clone()]
            t[idx][0, 1, 3, 4] = float("inf") if idx != 1 else float("nan")
            bad(f"{name} holds a non-finite value", *t)

    def test_unknown_backend(self):
        q, k, v = self._ok()
        with pytest.raises(ValueError, match="backend must be one of"):
            linear_attention(q, k, v, backend="cuda")

    def test_device_mismatch(self):
        q, k, v = self._ok()
        meta = v.to("meta")
        with pytest.raises(ValueError, match="devices differ"):
            linear_attention(q, k, meta)


def test_numpy_golden_agrees_on_numpy_copy():
    q, k, v = _qkv(1, 1, 40, 40, 32, seed=9)
    ref = golden_la(q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(linear_attention(q, k, v).numpy(), ref, rtol=RTOL, atol=ATOL)
