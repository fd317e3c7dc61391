"""COAT dynamic range expansion vs plain per-group FP8 on optimizer-state-like data."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from golden.coat import (
    K_MAX,
    dequantize_per_group,
    expand_dequantize,
    expand_quantize,
    quantize_per_group,
    relative_error,
    synthetic_moments,
)

N = 1 << 16


@pytest.mark.parametrize("moment,limit", [(1, 0.8), (2, 0.4)])
def test_expansion_beats_plain_e4m3(moment: int, limit: float) -> None:
    """Measured (seed 0, 64k elements): ratio ~0.61 (first moment, k ~1.6), ~0.21 (second,
    k ~5); theory: the fp8 relative error is divided by k."""
    x = synthetic_moments(N, moment, seed=0)
    e_exp = relative_error(x, expand_dequantize(expand_quantize(x)))
    e_plain = relative_error(x, dequantize_per_group(quantize_per_group(x)))
    ratio = e_exp / e_plain
    print(f"moment {moment}: expanded {e_exp:.4g} plain {e_plain:.4g} ratio {ratio:.3f}")
    assert ratio < limit, (e_exp, e_plain, ratio)


def test_e5m2_expansion_also_helps() -> None:
    x = synthetic_moments(N // 4, 1, seed=1)
    e_exp = relative_error(x, expand_dequantize(expand_quantize(x, fmt="e5m2")))
    e_plain = relative_error(x, dequantize_per_group(quantize_per_group(x, fmt="e5m2")))
    assert e_exp < 0.8 * e_plain


def test_group_statistics() -> None:
    x = synthetic_moments(4 * 128, 1, seed=2).reshape(4, 128)
    q = expand_quantize(x)
    assert q.codes.dtype == ml_dtypes.float8_e4m3fn and q.codes.shape == (4, 128)
    for arr in (q.scale, q.k, q.centre):
        assert arr.dtype == np.float32 and arr.shape == (4,)
    mag = np.abs(x.astype(np.float64))
    big, small = mag.max(1), mag.min(1)
    np.testing.assert_allclose(q.centre, np.sqrt(big * small), rtol=1e-7)
    k = np.floor(np.log2(448.0**2 / 2) / np.log2(big / small) * 16) / 16
    np.testing.assert_array_equal(q.k, k)
    np.testing.assert_allclose(q.scale, (big / q.centre) ** k / 448.0, rtol=1e-6)
    # the group absmax maps onto the format max; signs ride in the codes
    np.testing.assert_array_equal(np.abs(q.codes.astype(np.float32)).max(1), 448.0)
    np.testing.assert_array_equal(q.sign, np.sign(x).astype(np.int8))


def test_hand_example() -> None:
    """x = [1, 4, -2, 0]: M=4, m=1, c=2, k = floor(log2(100352)/2 * 16)/16 = 132/16."""
    q = expand_quantize(np.array([1.0, 4.0, -2.0, 0.0]), group_size=4)
    assert float(q.centre[0]) == 2.0 and float(q.k[0]) == 8.25
    scale = 2.0**8.25 / 448.0
    assert float(q.scale[0]) == pytest.approx(scale, rel=1e-7)
    # x'/scale = [448 * 2**-16.5, 448, -448 * 2**-8.25, 0]
    # 448 * 2**-16.5 = 0.004834 = 2.475 * 2**-9 (e4m3 subnormal grid) -> 2 * 2**-9
    # 448 * 2**-8.25 = 1.4716 -> 1.5 (grid 1/8 in [1, 2))
    np.testing.assert_array_equal(q.codes.astype(np.float64), [2 * 2.0**-9, 448.0, -1.5, 0.0])
    got = expand_dequantize(q)
    s32 = float(np.float32(scale))
    expect = [
        (2 * 2.0**-9 * s32) ** (1 / 8.25) * 2,
        (448 * s32) ** (1 / 8.25) * 2,
        -((1.5 * s32) ** (1 / 8.25)) * 2,
        0.0,
    ]
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert got[3] == 0.0 and abs(got[0] - 1.0) < 0.03 and abs(got[2] + 2.0) < 0.005


def test_special_groups() -> None:
    x = np.concatenate(
        [
            np.zeros(8),  # all zero
            np.array([3.0, -3.0] * 4),  # M == m: k = 1, exact
            np.array([1.0, 1.0 + 1e-6] * 4),  # M/m -> 1: k clamped to K_MAX
            np.array([5.0, 0.0, -2.0, 0.0] * 2),  # zeros inside a group stay zero
        ]
    ).astype(np.float32)
    q = expand_quantize(x, group_size=8)
    np.testing.assert_array_equal(q.k[:3], [1.0, 1.0, K_MAX])
    assert (q.scale[0], q.centre[0]) == (1.0, 1.0)
    x_hat = expand_dequantize(q)
    np.testing.assert_array_equal(x_hat[:8], 0.0)
    np.testing.assert_allclose(x_hat[8:24], x[8:24], rtol=1e-6)
    np.testing.assert_array_equal(x_hat[24:][x[24:] == 0], 0.0)
    np.testing.assert_allclose(x_hat[24:], x[24:], rtol=0.02)


def test_last_group_padding() -> None:
    """Size 300 with group 128: the short last group has the same stats as quantizing it alone."""
    x = synthetic_moments(300, 1, seed=3).reshape(3, 100)
    q = expand_quantize(x)
    assert q.scale.shape == (3,) and q.codes.shape == (3, 100)
    tail = expand_quantize(x.reshape(-1)[256:], group_size=44)
    for name in ("scale", "k", "centre"):
        assert getattr(q, name)[2] == getattr(tail, name)[0]
    tail_codes = q.codes.reshape(-1)[256:].view(np.uint8)
    np.testing.assert_array_equal(tail_codes, tail.codes.view(np.uint8))
    x_hat = expand_dequantize(q)
    assert x_hat.shape == (3, 100) and relative_error(x, x_hat) < 0.03
    p = quantize_per_group(x)
    assert dequantize_per_group(p).shape == (3, 100)


def test_deterministic() -> None:
    x = synthetic_moments(1000, 2, seed=5)
    a, b = expand_quantize(x), expand_quantize(x.copy())
    np.testing.assert_array_equal(a.codes.view(np.uint8), b.codes.view(np.uint8))
    np.testing.assert_array_equal(expand_dequantize(a), expand_dequantize(b))
    assert np.all(synthetic_moments(1000, 2, seed=5) > 0)


def test_bad_inputs() -> None:
    x = np.ones(256, dtype=np.float32)
    with pytest.raises(ValueError, match=r"unknown fmt 'e2m1'"):
        expand_quantize(x, fmt="e2m1")
    with pytest.raises(ValueError, match=r"unknown fmt 'int8'"):
        quantize_per_group(x, fmt="int8")
    with pytest.raises(ValueError, match=r"group_size must be a positive integer, got 0"):
        expand_quantize(x, group_size=0)
    with pytest.raises(ValueError, match=r"group_size must be a positive integer, got 1\.5"):
        quantize_per_group(x, group_size=1.5)  # type: ignore[arg-type]
    bad = x.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(nan\)"):
        expand_quantize(bad)
    bad[7] = -np.inf
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(-inf\)"):
        quantize_per_group(bad)
    with pytest.raises(ValueError, match=r"x_hat shape \(3,\) differs from x shape \(2,\)"):
        relative_error(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match=r"moment must be 1 or 2, got 3"):
        synthetic_moments(10, 3)
    assert math.isfinite(relative_error(np.zeros(3), np.zeros(3)))
