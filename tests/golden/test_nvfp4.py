"""NVFP4 golden: E2M1 grid and rounding, FP8 group scales, round trip, block-scaled GEMM."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from golden.nvfp4 import (
    E2M1_VALUES,
    NVFP4Tensor,
    dequantize_nvfp4,
    e2m1_decode,
    nvfp4_gemm,
    quantize_nvfp4,
)

_GRID = np.concatenate([-E2M1_VALUES[::-1], E2M1_VALUES]).astype(np.float64)


def _nearest_even(v: np.ndarray) -> np.ndarray:
    """Independent E2M1 rounding: nearest magnitude, ties to the even code, saturating at 6."""
    mag = np.minimum(np.abs(v.astype(np.float64)), 6.0)
    d = np.abs(mag[:, None] - E2M1_VALUES.astype(np.float64)[None, :])
    best = d.min(axis=1, keepdims=True)
    cand = d == best
    idx = np.where(cand[:, ::2].any(axis=1) & (cand.sum(axis=1) > 1),
                   np.argmax(cand & (np.arange(8) % 2 == 0), axis=1), np.argmax(cand, axis=1))
    return np.where(v < 0, -E2M1_VALUES[idx], E2M1_VALUES[idx])


class TestE2M1:
    def test_decode_table(self):
        vals = e2m1_decode(np.arange(16, dtype=np.uint8))
        np.testing.assert_array_equal(vals[:8], E2M1_VALUES)
        np.testing.assert_array_equal(vals[8:], -E2M1_VALUES)
        assert np.signbit(vals[8])

    def test_rounding_is_nearest_even_with_saturation(self):
        mids = (E2M1_VALUES[1:] + E2M1_VALUES[:-1]) / 2
        rng = np.random.default_rng(0)
        v = np.concatenate([mids, np.nextafter(mids, 0), np.nextafter(mids, 9), E2M1_VALUES,
                            rng.uniform(0, 6, 200), [6.0 - 1e-6]]).astype(np.float32)
        v = np.concatenate([v, -v])
        v = np.concatenate([v, np.zeros(-len(v) % 15, np.float32)])
        # global_scale 1 and a 6 in every group make the group scale exactly 1: codes = e2m1(v).
        x = np.concatenate([np.full((len(v) // 15, 1), 6.0, np.float32), v.reshape(-1, 15)], 1)
        q = quantize_nvfp4(x, global_scale=1.0)
        np.testing.assert_array_equal(q.scales.astype(np.float32), 1.0)
        np.testing.assert_array_equal(e2m1_decode(q.codes)[:, 1:].ravel(), _nearest_even(v))


class TestQuantizeNVFP4:
    def test_grid_scales_and_round_trip_bound(self):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((8, 128)) * np.exp(rng.normal(0, 2, (8, 8))).repeat(16, axis=1)
        x[0, :16] = 0.0  # a zero group
        q = quantize_nvfp4(x)
        assert q.codes.dtype == np.uint8 and q.codes.max() <= 15
        assert q.scales.dtype == ml_dtypes.float8_e4m3fn and q.scales.shape == (8, 8)
        t = np.float32(np.abs(x.astype(np.float32)).max() / np.float32(2688))
        assert q.global_scale == float(t) and q.scales.astype(np.float32).max() == 448
        sg = q.scales.astype(np.float64).repeat(16, axis=1)
        vals = e2m1_decode(q.codes).astype(np.float64)
        assert np.all(np.isin(vals, _GRID))
        deq = dequantize_nvfp4(q)
        np.testing.assert_array_equal(deq, (vals * sg * q.global_scale).astype(np.float32))
        eff = (sg.astype(np.float32) * t).astype(np.float64)
        x32 = x.astype(np.float32).astype(np.float64)
        normal = sg >= 2.0**-6
        assert np.all(np.abs(x32 - deq)[normal] <= eff[normal] * (1 + 2.0**-20))
        live = eff > 0
        v = x32[live] / eff[live]
        gap = np.abs(v[:, None] - _GRID[None, :]).min(axis=1)
        assert np.all(np.abs(v - vals[live]) <= gap + 1e-6 * np.abs(v))  # the nearest grid point
        np.testing.assert_array_equal(deq[0, :16], 0.0)

    def test_given_global_scale_saturates(self):
        x = np.linspace(-5, 5, 32, dtype=np.float32)[None, :]
        q = quantize_nvfp4(x, global_scale=1e-4)
        np.testing.assert_array_equal(q.scales.astype(np.float32), 448)
        assert np.all(np.abs(e2m1_decode(q.codes))[:, [0, -1]] == 6)

    def test_zero_tensor_and_torch_input(self):
        import torch

        q = quantize_nvfp4(torch.zeros(2, 32))
        assert q.global_scale == 1.0 and np.all(q.codes == 0) and np.all(q.dequantize() == 0)

    @pytest.mark.parametrize("call,match", [
        (lambda: quantize_nvfp4(np.ones((2, 20))), "x has K=20 channels"),
        (lambda: quantize_nvfp4(np.full((1, 16), np.nan)), r"x holds nan at index \(0, 0\)"),
        (lambda: quantize_nvfp4(np.ones((1, 16)), global_scale=0.0), "global_scale=0.0"),
        (lambda: NVFP4Tensor(np.zeros((1, 16), np.uint8), np.zeros((1, 2), ml_dtypes.float8_e4m3fn),
                             1.0), r"scales has shape \(1, 2\)"),
        (lambda: e2m1_decode(np.array([16])), "codes must be integers in 0..15"),
    ])
    def test_bad_input(self, call, match):
        with pytest.raises(ValueError, match=match):
            call()


class TestNVFP4Gemm:
    def test_bit_exact_and_close(self):
        rng = np.random.default_rng(2)
        a = quantize_nvfp4(rng.standard_normal((12, 64)) * 3)
        b = quantize_nvfp4(rng.standard_normal((10, 64)) / 5)
        y = nvfp4_gemm(a, b)
        av, bv = e2m1_decode(a.codes).astype(np.float64), e2m1_decode(b.codes).astype(np.float64)
        sa, sb = a.scales.astype(np.float64), b.scales.astype(np.float64)
        acc = np.zeros((12, 10), np.float32)
        for g in range(4):  # float64 holds every product exactly; casts are the binary32 roundings
            dot = av[:, 16 * g:16 * g + 16] @ bv[:, 16 * g:16 * g + 16].T
            acc = (acc.astype(np.float64) + sa[:, g, None] * sb[None, :, g] * dot).astype(
                np.float32)
        t = np.float32(np.float32(a.global_scale) * np.float32(b.global_scale))
        ref = (acc.astype(np.float64) * np.float64(t)).astype(np.float32)
        np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))
        full = a.dequantize().astype(np.float64) @ b.dequantize().T.astype(np.float64)
        assert np.abs(y - full).max() <= 1e-5 * np.abs(full).max()
        with pytest.raises(ValueError, match="a and b must be"):
            nvfp4_gemm(a, quantize_nvfp4(np.ones((2, 32))))
