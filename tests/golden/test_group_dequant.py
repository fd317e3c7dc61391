"""Fixed-point group dequantization: encoding, the integer datapath, and its error bound."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from golden.group_dequant import (
    GroupDequantSpec,
    accumulate_groups,
    dequant_error_bound,
    encode_scale_products,
    group_dequant_gemm,
    group_dots,
)
from golden.int_gemm import AccumulatorOverflowError
from golden.svdquant_ops import quantize_int4, w4a4_gemm


def _operands(m, n, k, seed, spread=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)) * 2.0 ** rng.integers(-spread, 1, (m, k // 64)).repeat(64, 1)
    w = rng.standard_normal((n, k)) * 2.0 ** rng.integers(-spread, 1, (n, k // 64)).repeat(64, 1)
    return (*quantize_int4(x), *quantize_int4(w))


def _accumulate(dots, mant, exp, spec):
    """:func:`accumulate_groups` on nested lists (arrays of them)."""
    return accumulate_groups(np.array(dots), np.array(mant), np.array(exp), spec)


class TestGroupDequantSpec:
    def test_defaults_and_widths(self):
        spec = GroupDequantSpec()
        assert (spec.mant_bits, spec.dot_bits, spec.guard_bits, spec.acc_bits) == (16, 14, 2, 48)
        assert spec.term_bits == 32

    @pytest.mark.parametrize("kw,match", [
        ({"mant_bits": 30}, "mant_bits=30 must be an int in 2..24"),
        ({"acc_bits": 60}, "acc_bits=60"),
        ({"guard_bits": -1}, "guard_bits=-1"),
        ({"dot_bits": 1.5}, "dot_bits=1.5"),
    ])
    def test_bad_spec(self, kw, match):
        with pytest.raises(ValueError, match=match):
            GroupDequantSpec(**kw)


class TestEncodeScaleProducts:
    def test_normalized_and_within_half_ulp(self):
        rng = np.random.default_rng(0)
        sx = rng.uniform(0.01, 3, (5, 4)).astype(np.float32)
        sw = rng.uniform(0.01, 3, (6, 4)).astype(np.float32)
        spec = GroupDequantSpec(mant_bits=12)
        mant, exp = encode_scale_products(sx, sw, spec)
        assert mant.shape == exp.shape == (5, 6, 4)
        assert mant.min() >= 2**11 and mant.max() < 2**12
        p = sx.astype(np.float64)[:, None, :] * sw[None, :, :]
        assert np.all(np.abs(np.ldexp(mant.astype(np.float64), exp) - p) <= 2.0**-12 * p)

    def test_exact_for_fp16_scales(self):
        rng = np.random.default_rng(1)
        sx = rng.uniform(0.001, 10, (3, 2)).astype(np.float16)
        sw = rng.uniform(0.001, 10, (4, 2)).astype(np.float16)
        mant, exp = encode_scale_products(sx, sw, GroupDequantSpec(mant_bits=22))
        p = sx.astype(np.float64)[:, None, :] * sw.astype(np.float64)[None, :, :]
        np.testing.assert_array_equal(np.ldexp(mant.astype(np.float64), exp), p)

    def test_ties_to_even_carry_and_zero(self):
        spec = GroupDequantSpec(mant_bits=4)
        sx = np.array([[8.5 / 16, 9.5 / 16, 1 - 2.0**-10, 0.0]], np.float32)
        mant, exp = encode_scale_products(sx, np.ones((1, 4), np.float32), spec)
        np.testing.assert_array_equal(mant[0, 0], [8, 10, 8, 0])
        np.testing.assert_array_equal(exp[0, 0], [-4, -4, -3, 0])

    def test_negative_scale_raises(self):
        with pytest.raises(ValueError, match="sw holds -1.0 < 0"):
            encode_scale_products(np.ones((1, 1)), -np.ones((1, 1)), GroupDequantSpec())


class TestAccumulateGroups:
    SPEC = GroupDequantSpec(mant_bits=4, dot_bits=6, guard_bits=1, acc_bits=16)

    def test_hand_worked_example(self):
        # shifts 0, 4, 5: 48 + round(-120 / 16 = -7.5 -> -7, ties up) + round(210 / 32 -> 7)
        acc, lsb = _accumulate([[[3, -5, 7]]], [[[8, 12, 15]]], [[[0, -4, -5]]], self.SPEC)
        assert acc.tolist() == [[48]] and lsb.tolist() == [[-1]]
        exact = 3 * 8 - 5 * 12 / 16 + 7 * 15 / 32
        assert abs(48 * 0.5 - exact) <= 2 * 2.0 ** (0 - 1 - 1)  # two shifted terms, half an LSB

    def test_dead_groups_and_huge_shift(self):
        acc, lsb = _accumulate([[[1, 31, 5]]], [[[8, 0, 8]]], [[[0, 40, -200]]], self.SPEC)
        assert acc.tolist() == [[16]] and lsb.tolist() == [[-1]]  # mant 0 ignored; 2**-200 -> 0
        acc, lsb = accumulate_groups(np.zeros((1, 1, 2), int), np.zeros((1, 1, 2), int),
                                     np.zeros((1, 1, 2), int), self.SPEC)
        assert acc.tolist() == [[0]]

    def test_range_checks_and_overflow(self):
        with pytest.raises(ValueError, match="dots holds 32, outside -32..31"):
            _accumulate([[[32]]], [[[8]]], [[[0]]], self.SPEC)
        with pytest.raises(ValueError, match="mant holds 3, not normalized"):
            _accumulate([[[1]]], [[[3]]], [[[0]]], self.SPEC)
        with pytest.raises(AccumulatorOverflowError, match="acc_bits=16"):
            accumulate_groups(np.full((1, 1, 40), 31), np.full((1, 1, 40), 15),
                              np.zeros((1, 1, 40), int), self.SPEC)


class TestGroupDequantGemm:
    @pytest.mark.parametrize("spec", [GroupDequantSpec(), GroupDequantSpec(mant_bits=8,
                                                                             guard_bits=0)])
    def test_error_bound_against_exact_rationals(self, spec):
        qx, sx, qw, sw = _operands(5, 6, 256, 2)
        y = group_dequant_gemm(qx, sx, qw, sw, spec=spec)
        dots = group_dots(qx, qw)
        bound = dequant_error_bound(dots, sx, sw, spec)
        for i in range(5):
            for j in range(6):
                exact = sum(int(dots[i, j, g]) * Fraction(float(sx[i, g]))
                            * Fraction(float(sw[j, g])) for g in range(4))
                assert abs(Fraction(float(y[i, j])) - exact) <= Fraction(float(bound[i, j]))
        ref = w4a4_gemm(qx, sx, qw, sw)
        scale = np.abs(dots * sx[:, None, :].astype(np.float64) * sw[None, :, :]).sum(-1)
        assert np.all(np.abs(y - ref) <= 2.0 ** (2 - spec.mant_bits) * scale)

    def test_exact_for_power_of_two_scales(self):
        rng = np.random.default_rng(3)
        qx = rng.integers(-8, 8, (7, 256))
        qw = rng.integers(-8, 8, (9, 256))
        sx = 2.0 ** rng.integers(-3, 1, (7, 4))
        sw = 2.0 ** rng.integers(-3, 1, (9, 4))
        y = group_dequant_gemm(qx, sx, qw, sw)
        np.testing.assert_array_equal(y, w4a4_gemm(qx, sx, qw, sw))
        exact = (qx * np.repeat(sx, 64, 1)) @ (qw * np.repeat(sw, 64, 1)).T
        np.testing.assert_array_equal(y, exact)

    def test_unsigned_activations_and_shapes(self):
        rng = np.random.default_rng(4)
        qx = rng.integers(0, 16, (3, 128))
        qw = rng.integers(-8, 8, (2, 128))
        sx, sw = rng.uniform(0.1, 1, (3, 2)), rng.uniform(0.1, 1, (2, 2))
        y = group_dequant_gemm(qx, sx, qw, sw, act_signed=False)
        ref = w4a4_gemm(qx, sx, qw, sw, act_signed=False)
        assert np.abs(y - ref).max() <= 2.0**-13 * np.abs(ref).max()
        with pytest.raises(ValueError, match="qx holds 15, outside -8..7"):
            group_dequant_gemm(qx, sx, qw, sw)
        with pytest.raises(ValueError, match=r"sx \(2, 2\)"):
            group_dequant_gemm(qx, sx[:2], qw, sw, act_signed=False)
