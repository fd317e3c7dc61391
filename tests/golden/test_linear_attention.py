"""Sana ReLU linear attention: linear form vs quadratic form vs a direct float64 formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden.linear_attention import linear_attention, linear_attention_quadratic


def _qkv(shape_q, shape_k, dv=None, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(shape_q).astype(np.float32)
    k = rng.standard_normal(shape_k).astype(np.float32)
    v = rng.standard_normal((*shape_k[:-1], dv or shape_k[-1])).astype(np.float32)
    return q, k, v


def _direct(q, k, v, eps):
    """o_i = sum_j v_j (phi(k_j).phi(q_i)) / (sum_j phi(k_j).phi(q_i) + eps), float64 loops."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    b, h, nq, _ = q.shape
    out = np.zeros((b, h, nq, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for i in range(nq):
                w = [
                    float(np.maximum(k[bi, hi, j], 0) @ np.maximum(q[bi, hi, i], 0))
                    for j in range(k.shape[2])
                ]
                num = sum(wj * v[bi, hi, j] for j, wj in enumerate(w))
                out[bi, hi, i] = num / (sum(w) + eps)
    return out


def test_linear_equals_quadratic() -> None:
    """fp32 on (2, 3, 256, 32): agree to rtol 1e-4 (plus atol 1e-6 for near-zero outputs)."""
    q, k, v = _qkv((2, 3, 256, 32), (2, 3, 256, 32))
    lin = linear_attention(q, k, v)
    quad = linear_attention_quadratic(q, k, v)
    np.testing.assert_allclose(lin, quad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("nq,n,d,dv", [(5, 7, 4, 4), (3, 6, 8, 5), (1, 1, 2, 3)])
def test_matches_float64_formula(nq: int, n: int, d: int, dv: int) -> None:
    q, k, v = _qkv((2, 2, nq, d), (2, 2, n, d), dv, seed=nq * 100 + n)
    ref = _direct(q, k, v, 1e-8)
    for fn in (linear_attention, linear_attention_quadratic):
        np.testing.assert_allclose(fn(q, k, v), ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(
        linear_attention(q, k, v, eps=1e-15), _direct(q, k, v, 1e-15), rtol=2e-5, atol=1e-6
    )


def test_kinds_and_shapes() -> None:
    q, k, v = _qkv((1, 4, 16, 32), (1, 4, 24, 32), 16)
    out_np = linear_attention(q, k, v)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (1, 4, 16, 16)
    assert out_np.dtype == np.float32
    out_t = linear_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_array_equal(out_t.numpy(), out_np)
    out_t64 = linear_attention_quadratic(*(torch.from_numpy(t).double() for t in (q, k, v)))
    assert out_t64.dtype == torch.float32
    # heads are independent
    np.testing.assert_array_equal(linear_attention(q[:, 2:3], k[:, 2:3], v[:, 2:3]), out_np[:, 2:3])


def test_all_zero_weights_give_zero() -> None:
    """A query with phi(q) = 0 (or all phi(k) = 0) has denominator 0 -> 0 / eps = 0, not NaN."""
    q, k, v = _qkv((1, 1, 4, 8), (1, 1, 6, 8))
    q[0, 0, 1] = -np.abs(q[0, 0, 1])
    for fn in (linear_attention, linear_attention_quadratic):
        out = fn(q, k, v)
        np.testing.assert_array_equal(out[0, 0, 1], 0.0)
        np.testing.assert_array_equal(fn(q, -np.abs(k), v), 0.0)


def test_bad_inputs() -> None:
    q, k, v = _qkv((1, 2, 8, 32), (1, 2, 8, 32))
    with pytest.raises(ValueError, match=r"q must be 4-D .* got shape \(8, 32\)"):
        linear_attention(q[0, 0], k, v)
    with pytest.raises(ValueError, match=r"head_dim of q \(32\) and k \(16\) differ"):
        linear_attention(q, k[..., :16], v)
    with pytest.raises(ValueError, match=r"tokens of k \(8\) and v \(5\) differ"):
        linear_attention_quadratic(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match=r"batch/heads differ"):
        linear_attention(q, k[:, :1], v[:, :1])
    bad = v.copy()
    bad[0, 1, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"v holds a non-finite value \(nan\)"):
        linear_attention(q, k, bad)
    with pytest.raises(ValueError, match=r"k holds a non-finite value \(inf\)"):
        linear_attention(q, torch.full((1, 2, 8, 32), float("inf")), v)
    with pytest.raises(ValueError, match=r"eps must be a finite number >= 0, got -1\.0"):
        linear_attention(q, k, v, eps=-1.0)
