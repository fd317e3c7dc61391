"""FP8 rounding (RNE, saturation) and per-tensor / per-group scaled quantization."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from golden.fp8 import (
    FORMATS,
    dequantize,
    fp8_format,
    fp8_round,
    quantize_per_group,
    quantize_per_tensor,
)


def _finite_grid(fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """All non-negative finite values of ``fmt`` (sorted) and their 8-bit codes."""
    bits = np.arange(256, dtype=np.uint8)
    vals = bits.view(FORMATS[fmt].dtype).astype(np.float64)
    keep = np.isfinite(vals) & (vals >= 0) & ~((vals == 0) & (bits != 0))
    order = np.argsort(vals[keep])
    return vals[keep][order], bits[keep][order]


def test_format_maxima() -> None:
    assert FORMATS["e4m3"].max == 448.0 == float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max)
    assert FORMATS["e5m2"].max == 57344.0 == float(ml_dtypes.finfo(ml_dtypes.float8_e5m2).max)
    assert _finite_grid("e4m3")[0].max() == 448.0
    assert _finite_grid("e5m2")[0].max() == 57344.0
    assert FORMATS["e4m3"].min_subnormal == 2.0**-9
    assert FORMATS["e5m2"].min_subnormal == 2.0**-16


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_round_equals_ml_dtypes_cast(fmt: str) -> None:
    rng = np.random.default_rng(1)
    fmax = FORMATS[fmt].max
    x = rng.standard_normal(4096) * 10.0 ** rng.uniform(-4, np.log10(fmax), 4096)
    x = np.clip(x, -fmax, fmax).astype(np.float32)
    got = fp8_round(x, fmt)
    assert got.dtype == FORMATS[fmt].dtype
    np.testing.assert_array_equal(got.view(np.uint8), x.astype(FORMATS[fmt].dtype).view(np.uint8))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_round_is_nearest_ties_to_even(fmt: str) -> None:
    """Independent reference: nearest grid value; exact midpoints go to the even code."""
    vals, bits = _finite_grid(fmt)
    mids = (vals[:-1] + vals[1:]) / 2
    got = fp8_round(mids.astype(np.float32), fmt).astype(np.float64)
    expect = np.where(bits[:-1] % 2 == 0, vals[:-1], vals[1:])
    np.testing.assert_array_equal(got, expect)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, vals[-1], 2000).astype(np.float32)
    nearest = vals[np.abs(x.astype(np.float64)[:, None] - vals[None, :]).argmin(axis=1)]
    np.testing.assert_array_equal(fp8_round(x, fmt).astype(np.float64), nearest)
    np.testing.assert_array_equal(fp8_round(-x, fmt).astype(np.float64), -nearest)


def test_saturate_and_raise() -> None:
    assert float(fp8_round(1000.0)) == 448.0
    assert float(fp8_round(-1e6, "e5m2")) == -57344.0
    assert float(fp8_round(448.0, overflow="raise")) == 448.0
    with pytest.raises(ValueError, match=r"x holds 449\.0 beyond the e4m3 max 448"):
        fp8_round(np.array([1.0, -449.0]), overflow="raise")
    with pytest.raises(ValueError, match="unknown overflow 'wrap'"):
        fp8_round(1.0, overflow="wrap")  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"unknown fmt 'e3m4'"):
        fp8_format("e3m4")
    with pytest.raises(ValueError, match=r"unknown fmt 'fp16'"):
        quantize_per_tensor(np.ones(4), "fp16")
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(nan\)"):
        fp8_round(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(inf\)"):
        quantize_per_group(np.array([[1.0, np.inf]]), group_size=2)
    with pytest.raises(ValueError, match=r"group_size 5 does not divide the last axis"):
        quantize_per_group(np.ones((2, 16)), group_size=5)
    with pytest.raises(ValueError, match=r"group_size must be a positive integer, got 0"):
        quantize_per_group(np.ones((2, 16)), group_size=0)
    with pytest.raises(ValueError, match=r"x must have at least one axis"):
        quantize_per_group(np.float32(1.0))


@pytest.mark.parametrize("fmt,mant", [("e4m3", 3), ("e5m2", 2)])
def test_scaled_quantization_error(fmt: str, mant: int) -> None:
    """Per group: scale = absmax / max, and |x - x_hat| <= 2**-(mant+1) |x| + subnormal floor."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 64)).astype(np.float32) * 10.0 ** rng.uniform(-3, 3, (8, 1))
    x[0, :16] = 0.0  # an all-zero group
    q = quantize_per_group(x, 16, fmt)
    assert q.scales.shape == (8, 4) and q.codes.shape == x.shape
    absmax = np.abs(x.reshape(8, 4, 16)).max(-1)
    np.testing.assert_allclose(q.scales, np.where(absmax > 0, absmax / FORMATS[fmt].max, 1.0))
    x_hat = dequantize(q)
    assert x_hat.dtype == np.float32
    np.testing.assert_array_equal(x_hat[0, :16], 0.0)
    scale_el = np.repeat(q.scales, 16, axis=1)
    floor = scale_el * FORMATS[fmt].min_subnormal / 2
    tol = np.maximum(2.0 ** -(mant + 1) * np.abs(x), floor) * (1 + 1e-6)
    assert np.all(np.abs(x_hat - x) <= tol)
    pt = quantize_per_tensor(x, fmt)
    assert pt.scales.shape == ()
    assert float(pt.scales) == pytest.approx(np.abs(x).max() / FORMATS[fmt].max)


def test_per_group_beats_per_tensor_with_outlier_groups() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    x[::16, :16] *= 3e4  # a few outlier 1x16 groups, beyond E4M3 normal range
    rel = {}
    for name, q in (("tensor", quantize_per_tensor(x)), ("group", quantize_per_group(x, 16))):
        x_hat = dequantize(q)
        small = np.ones_like(x, dtype=bool)
        small[::16, :16] = False
        rel[name] = np.linalg.norm((x_hat - x)[small]) / np.linalg.norm(x[small])
    assert rel["group"] < 0.5 * rel["tensor"], rel
