"""Fixed-point SVDQuant layer: widths, each datapath step, extremes, error bounds (a) and (b),
the branch overhead counts, and NVFP4 on the same group dequantizer."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest
import torch

from golden.group_dequant import (
    GroupDequantSpec,
    accumulate_groups,
    dequant_error_bound,
    encode_products,
    encode_scale_products,
    group_dequant_gemm,
    group_dots,
    nvfp4_dequant_gemm,
    nvfp4_group_operands,
    terms_error_bound,
)
from golden.nvfp4 import NVFP4Tensor, dequantize_nvfp4, e2m1_decode, nvfp4_gemm, quantize_nvfp4
from golden.svdquant import SVDQuantLinear, quantize_linear, relative_error
from golden.svdquant_fixed import (
    SVDQuantFixedSpec,
    branch_error_bound,
    branch_overhead,
    fixed_error_bound,
    lowrank_dot_bits,
    quantize_branch,
    quantize_symmetric,
    requant_error_bound,
    requantize_rows,
    svdquant_fixed_int,
    svdquant_fixed_layer,
    svdquant_fixed_linear,
)
from golden.svdquant_ops import quantize_int4
from golden.svdquant_synth import outlier_layer

M, K, N, R = 8, 128, 16, 8
SIXTEEN = SVDQuantFixedSpec(branch_bits=16, max_rank=32, max_k=4096, u_bits=48,
                            dequant=GroupDequantSpec(mant_bits=14, dot_bits=37, acc_bits=53))


def _spec(bits: int, gs: int) -> SVDQuantFixedSpec:
    if bits == 16:
        return SVDQuantFixedSpec(gs, 16, SIXTEEN.max_rank, SIXTEEN.max_k, 48, SIXTEEN.dequant)
    return SVDQuantFixedSpec(group_size=gs)


@pytest.fixture(scope="module")
def layers():
    """Quantized SVDQuant layers (one SVD each) and their test activations, by (seed, gs)."""
    out = {}
    for seed in (0, 1):
        syn = outlier_layer(N, K, M, seed=seed, weight_rank=16 if seed == 0 else 4)
        for gs in (64, 32):
            layer = quantize_linear(syn.weight, syn.calib_x, rank=R, group_size=gs, alpha=0.5)
            out[seed, gs] = (layer, syn)
    return out


def _x_hat(layer: SVDQuantLinear, x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / layer.smooth).astype(np.float32)


def _run(x_hat, qw, sw, down, up, spec):
    """Quantize and run the datapath: (qx, sx, branch operands, result)."""
    qx, sx = quantize_int4(x_hat, spec.group_size)
    ops = quantize_branch(x_hat, down, up, spec.branch_bits)
    res = svdquant_fixed_int(qx, sx, qw, sw, ops.xl, ops.sxl, ops.l1q, ops.l2q, ops.sl2, spec)
    return qx, sx, ops, res


def _exact_t(res, sx, sw, sxl, sl2, i, j) -> Fraction:
    """``T`` of one output in rationals: the int4 groups plus the low-rank term."""
    g = sx.shape[1]
    t = sum(int(res.dots[i, j, h]) * Fraction(float(sx[i, h])) * Fraction(float(sw[j, h]))
            for h in range(g))
    lr = Fraction(float(sxl[i])) * Fraction(float(sl2[j])) * Fraction(2) ** int(res.shift[i])
    return t + int(res.dot_lr[i, j]) * lr


def _assert_bound_a(res, sx, sw, ops, spec) -> float:
    """Error (a) against exact rationals for every output; returns max |err| / bound."""
    bound = fixed_error_bound(res, sx, sw, ops.sxl, ops.sl2, spec)
    worst = 0.0
    for i in range(res.acc.shape[0]):
        for j in range(res.acc.shape[1]):
            err = abs(Fraction(float(res.y[i, j])) - _exact_t(res, sx, sw, ops.sxl, ops.sl2, i, j))
            assert err <= Fraction(float(bound[i, j])), (i, j)
            worst = max(worst, float(err) / float(bound[i, j]) if bound[i, j] else 0.0)
    return worst


class TestSpec:
    def test_widths(self):
        assert [lowrank_dot_bits(r, b) for r, b in ((8, 8), (32, 8), (64, 8), (32, 16), (0, 8))] \
            == [19, 21, 22, 37, 1]
        spec = SVDQuantFixedSpec()
        assert spec.dequant == GroupDequantSpec(dot_bits=22, acc_bits=48)
        assert spec.acc_bits_needed(16, 2) == 41 and spec.dequant.term_bits == 40
        small = SVDQuantFixedSpec.for_shape(K, R, group_size=32)
        assert (small.max_k, small.max_rank, small.dequant.dot_bits) == (K, R, 19)
        assert SVDQuantFixedSpec.for_shape(K, 0).dequant.dot_bits == 14  # the int4 groups
        SVDQuantFixedSpec(max_k=131071)  # the largest K a 32-bit u accumulator holds at b = 8
        assert SIXTEEN.acc_bits_needed(14, 2) == 52

    @pytest.mark.parametrize("kw,match", [
        ({"branch_bits": 7}, "branch_bits=7 must be an int in 8..16"),
        ({"group_size": 0}, "group_size=0"),
        ({"max_k": 131072}, "u_bits=32 < 33 needed for K <= max_k=131072 at branch_bits=8"),
        ({"branch_bits": 16}, "u_bits=32 < 46 needed"),
        ({"branch_bits": 16, "u_bits": 48}, "need acc_bits=56 > 53 at mant_bits=16"),
        ({"dequant": GroupDequantSpec()}, r"dequant.dot_bits=14 < 22 needed for rank 64"),
        ({"dequant": GroupDequantSpec(dot_bits=22, acc_bits=40)}, "dequant.acc_bits=40 < 41"),
        ({"dequant": "wide"}, "dequant='wide' must be a GroupDequantSpec"),
    ])
    def test_bad_spec(self, kw, match):
        with pytest.raises(ValueError, match=match):
            SVDQuantFixedSpec(**kw)


class TestQuantizeSymmetric:
    def test_is_quantize_int4_with_one_group_per_row(self):
        x = np.random.default_rng(0).standard_normal((6, 40)) * 3
        codes, scales = quantize_symmetric(x, 4)
        ref_c, ref_s = quantize_int4(x, group_size=40)
        np.testing.assert_array_equal(codes, ref_c)
        np.testing.assert_array_equal(scales, ref_s[:, 0])

    @pytest.mark.parametrize("bits", [8, 12, 16])
    def test_round_trip_dtype_and_zero_row(self, bits):
        rng = np.random.default_rng(bits)
        x = rng.standard_normal((5, 64)) * np.exp(rng.normal(0, 4, (5, 1)))
        x[2] = 0
        codes, s = quantize_symmetric(x, bits)
        qmax = 2 ** (bits - 1) - 1
        assert codes.dtype == (np.int8 if bits == 8 else np.int16) and s.dtype == np.float32
        assert s[2] == 1 and not codes[2].any() and np.abs(codes).max() == qmax
        err = np.abs(x.astype(np.float32) - codes * s[:, None].astype(np.float64))
        assert np.all(err <= s[:, None] * (0.5 + qmax * 2.0**-23))

    def test_bad_input(self):
        with pytest.raises(ValueError, match="bits=1 must be an int in 2..16"):
            quantize_symmetric(np.ones((2, 2)), 1)
        with pytest.raises(ValueError, match="x must be 2-D"):
            quantize_symmetric(np.ones(3), 8)


class TestRequantize:
    def test_hand_worked_rows(self):
        u32 = np.array([[255, -3], [-511, 0], [127, -127], [0, 0], [-256, 1]])
        shift, u = requantize_rows(u32, 8)
        assert shift.tolist() == [1, 2, 0, 0, 2]
        # 127.5 -> 128 saturates to 127; -127.75 -> -128; ties toward +inf: -1.5 -> -1
        assert u.tolist() == [[127, -1], [-128, 0], [127, -127], [0, 0], [-64, 0]]

    @pytest.mark.parametrize("bits", [8, 16])
    def test_error_bound_property(self, bits):
        rng = np.random.default_rng(bits)
        u32 = rng.integers(-(2**31), 2**31, (400, 6)) >> rng.integers(0, 31, (400, 1))
        shift, u = requantize_rows(u32, bits)
        assert u.min() >= -(2 ** (bits - 1)) and u.max() < 2 ** (bits - 1)
        err = np.abs((u << shift[:, None]) - u32)
        assert np.all(err <= (1 << shift[:, None]) - 1)
        row_max = np.abs(u32).max(axis=1, keepdims=True)
        assert np.all(err <= 2.0 ** (2 - bits) * row_max)
        assert np.all((shift == 0) == (row_max[:, 0] < 2 ** (bits - 1)))


class TestSelfConsistency:
    @pytest.mark.parametrize("gs", [64, 32])
    def test_zero_branch_is_group_dequant_gemm_bit_for_bit(self, layers, gs):
        layer, syn = layers[0, gs]
        x_hat = _x_hat(layer, syn.test_x)
        zd, zu = np.zeros_like(layer.lora_down), np.zeros_like(layer.lora_up)
        spec = SVDQuantFixedSpec(group_size=gs)
        qx, sx, _, res = _run(x_hat, layer.qweight, layer.wscales, zd, zu, spec)
        ref = group_dequant_gemm(qx, sx, layer.qweight, layer.wscales, gs)
        assert not res.dot_lr.any() and not res.mant[..., -1].any()
        np.testing.assert_array_equal(res.y.view(np.uint32), ref.view(np.uint32))
        y = svdquant_fixed_linear(x_hat, layer.qweight, layer.wscales, zd, zu, spec)
        np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))

    @pytest.mark.parametrize("bits,gs", [(8, 64), (8, 32), (16, 64)])
    def test_every_step(self, layers, bits, gs):
        layer, syn = layers[1, gs]
        x_hat = _x_hat(layer, syn.test_x)
        spec = _spec(bits, gs)
        qx, sx, ops, res = _run(x_hat, layer.qweight, layer.wscales, layer.lora_down,
                                layer.lora_up, spec)
        np.testing.assert_array_equal(res.u32, ops.xl.astype(np.int64) @ ops.l1q)
        shift, u = requantize_rows(res.u32, bits)
        np.testing.assert_array_equal(res.shift, shift)
        np.testing.assert_array_equal(res.u, u)
        np.testing.assert_array_equal(res.dot_lr, u @ ops.l2q.astype(np.int64))
        np.testing.assert_array_equal(res.dots[..., :-1], group_dots(qx, layer.qweight, gs))
        mant, exp = encode_scale_products(sx, layer.wscales, spec.dequant)
        np.testing.assert_array_equal(res.mant[..., :-1], mant)
        np.testing.assert_array_equal(res.exp[..., :-1], exp)
        # the low-rank product: encode sxl * sl2, then add s_m to the exponent; the same as
        # encoding the exact p_lr = sxl sl2 2**s_m
        p_lr = np.ldexp(np.outer(ops.sxl, ops.sl2).astype(np.float64), res.shift[:, None])
        m_lr, e_lr = encode_products(p_lr, spec.dequant)
        live = res.dot_lr != 0
        np.testing.assert_array_equal(res.mant[..., -1], np.where(live, m_lr, 0))
        np.testing.assert_array_equal(res.exp[..., -1], np.where(live, e_lr, 0))
        acc, lsb = accumulate_groups(res.dots, res.mant, res.exp, spec.dequant)
        np.testing.assert_array_equal(res.acc, acc)
        np.testing.assert_array_equal(res.lsb_exp, lsb)
        np.testing.assert_array_equal(res.y, np.ldexp(acc.astype(np.float64), lsb).astype(
            np.float32))
        assert np.abs(res.dot_lr).max() >= 2**14  # wider than any int4 group dot
        y = svdquant_fixed_layer(x_hat, layer, spec)
        np.testing.assert_array_equal(y, res.y)
        yt = svdquant_fixed_layer(torch.from_numpy(x_hat), layer, spec)
        assert isinstance(yt, torch.Tensor)
        np.testing.assert_array_equal(yt.numpy(), res.y)

    def test_branch_operands(self, layers):
        layer, syn = layers[0, 64]
        ops = quantize_branch(_x_hat(layer, syn.test_x), layer.lora_down, layer.lora_up)
        assert ops.l1q.shape == (K, R) and ops.l2q.shape == (R, N) and ops.xl.shape == (M, K)
        c1, s1 = quantize_symmetric(layer.lora_down, 8)
        np.testing.assert_array_equal(ops.l1q, c1.T)
        l2 = (s1[None, :] * layer.lora_up).astype(np.float32)  # rank scales folded, one fl32
        c2, s2 = quantize_symmetric(l2, 8)
        np.testing.assert_array_equal(ops.l2q, c2.T)
        np.testing.assert_array_equal(ops.sl2, s2)


class TestExtremes:
    def test_minimum_codes_zero_groups_zero_row_and_the_widest_low_rank_dot(self):
        rng = np.random.default_rng(5)
        qx = rng.integers(-8, 8, (M, K))
        qx[0] = -8  # int4 minimum everywhere, against a minimum weight row
        qx[1, :64] = 0  # an all-zero group
        qw = rng.integers(-8, 8, (N, K))
        qw[0] = -8
        sx = rng.uniform(0.01, 1, (M, 2)).astype(np.float32)
        sw = rng.uniform(0.01, 1, (N, 2)).astype(np.float32)
        xl = rng.integers(-128, 128, (M, K))
        l1q = rng.integers(-128, 128, (K, R))
        xl[2] = 0  # an all-zero branch row
        # row 3: u32 = -511 in every rank -> s = 2, u = round(-127.75) = -128
        xl[3] = 0
        xl[3, :5] = [127, 127, 127, 127, 3]
        l1q[:5] = -1
        l2q = rng.integers(-128, 128, (R, N))
        l2q[:, 0] = -128
        sxl = rng.uniform(0.001, 0.1, M).astype(np.float32)
        sl2 = rng.uniform(0.001, 0.1, N).astype(np.float32)
        spec = SVDQuantFixedSpec.for_shape(K, R)
        res = svdquant_fixed_int(qx, sx, qw, sw, xl, sxl, l1q, l2q, sl2, spec)
        assert res.dots[0, 0, 0] == 64 * 64 and res.dots[1, :, 0].tolist() == [0] * N
        assert res.shift[2] == 0 and not res.dot_lr[2].any() and not res.mant[2, :, -1].any()
        assert res.shift[3] == 2 and res.u[3].tolist() == [-128] * R
        assert res.dot_lr[3, 0] == R * 2**14 == 2 ** (lowrank_dot_bits(R, 8) - 2)
        _assert_bound_a(res, sx, sw, SimpleNamespace(sxl=sxl, sl2=sl2), spec)
        with pytest.raises(ValueError, match="dots holds 131072, outside -131072..131071"):
            accumulate_groups(res.dots, res.mant, res.exp, GroupDequantSpec(dot_bits=18))

    def test_all_zero_activation_row_gives_zero(self, layers):
        layer, syn = layers[0, 64]
        x_hat = _x_hat(layer, syn.test_x)
        x_hat[4] = 0
        y = svdquant_fixed_layer(x_hat, layer)
        assert not y[4].any() and y[3].any()

    def test_unsigned_int4_activations(self):
        rng = np.random.default_rng(6)
        qx, qw = rng.integers(0, 16, (M, K)), rng.integers(-8, 8, (N, K))
        qx[0], qw[0] = 15, -8  # the widest int4 group dot: -120 * 64
        sx, sw = rng.uniform(0.1, 1, (M, 2)), rng.uniform(0.1, 1, (N, 2))
        xl, l1q = np.zeros((M, K), int), np.zeros((K, R), int)
        spec = SVDQuantFixedSpec.for_shape(K, R)
        res = svdquant_fixed_int(qx, sx, qw, sw, xl, np.ones(M), l1q, np.zeros((R, N), int),
                                 np.ones(N), spec, act_signed=False)
        assert res.dots[0, 0, 0] == -120 * 64
        ref = group_dequant_gemm(qx, sx, qw, sw, act_signed=False)
        np.testing.assert_array_equal(res.y, ref)

    def test_bad_operands(self, layers):
        layer, syn = layers[0, 64]
        x_hat = _x_hat(layer, syn.test_x)
        qx, sx = quantize_int4(x_hat)
        ops = quantize_branch(x_hat, layer.lora_down, layer.lora_up)
        args = [qx, sx, layer.qweight, layer.wscales, ops.xl, ops.sxl, ops.l1q, ops.l2q, ops.sl2]

        def call(i, v, spec=None):
            return svdquant_fixed_int(*args[:i], v, *args[i + 1:], spec)

        with pytest.raises(ValueError, match="xl holds 200, outside -128..127"):
            call(4, np.full((M, K), 200))
        with pytest.raises(ValueError, match="sxl holds -1.0 < 0"):
            call(5, -np.ones(M))
        with pytest.raises(ValueError, match=r"l2q \(4, 16\)"):
            call(7, ops.l2q[:4])
        with pytest.raises(ValueError, match=r"sw \(16, 3\)"):
            call(3, np.ones((N, 3)))
        with pytest.raises(ValueError, match="rank=8 exceed the spec's max_k=16384, max_rank=4"):
            call(8, ops.sl2, SVDQuantFixedSpec(max_rank=4))
        with pytest.raises(ValueError, match="act_unsigned=True"):
            svdquant_fixed_layer(x_hat, dataclasses.replace(layer, act_unsigned=True))


class TestErrorBounds:
    @pytest.mark.parametrize("bits,gs,seed", [(8, 64, 0), (8, 32, 1), (16, 32, 0)])
    def test_a_against_exact_rationals(self, layers, bits, gs, seed):
        layer, syn = layers[seed, gs]
        x_hat = _x_hat(layer, syn.test_x)
        spec = _spec(bits, gs)
        _, sx, ops, res = _run(x_hat, layer.qweight, layer.wscales, layer.lora_down,
                               layer.lora_up, spec)
        worst = _assert_bound_a(res, sx, layer.wscales, ops, spec)
        assert 0 < worst < 1

    @pytest.mark.parametrize("bits,branch_tol,layer_tol", [(8, 2e-2, 2e-2), (16, 1e-4, 1e-4)])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_b_against_the_float_svdquant_layer(self, layers, bits, branch_tol, layer_tol, seed):
        """Measured: branch ~1.0-1.3e-2 (b = 8: x, down, L2 and requant each ~5e-3), ~4e-5
        (b = 16); the layer tracks the branch, which carries most of these outputs."""
        layer, syn = layers[seed, 64]
        x_hat = _x_hat(layer, syn.test_x)
        spec = _spec(bits, 64)
        _, _, ops, res = _run(x_hat, layer.qweight, layer.wscales, layer.lora_down,
                              layer.lora_up, spec)
        exact = x_hat.astype(np.float64) @ layer.lora_down.T.astype(np.float64) @ \
            layer.lora_up.T.astype(np.float64)
        fixed = np.ldexp(np.outer(ops.sxl, ops.sl2).astype(np.float64),
                         res.shift[:, None]) * res.dot_lr
        bound = branch_error_bound(x_hat, layer.lora_down, layer.lora_up, bits)
        assert np.all(np.abs(fixed - exact) <= bound * (1 + 1e-9))
        u32_branch = (res.u32 * ops.sxl[:, None].astype(np.float64)) @ (
            ops.l2q * ops.sl2[None, :].astype(np.float64))
        req = requant_error_bound(res.shift, ops.l2q, ops.sxl, ops.sl2)
        assert np.all(np.abs(fixed - u32_branch) <= req * (1 + 1e-9) + 1e-12 * np.abs(fixed))
        assert relative_error(fixed, exact) < branch_tol
        y_float = layer(syn.test_x) - layer.epilogue_bias
        assert relative_error(res.y, y_float) < layer_tol
        y_true = syn.test_x.astype(np.float64) @ syn.weight.T.astype(np.float64)
        # measured 1.13-1.17x at b = 8, 1.00x at b = 16
        assert relative_error(res.y, y_true) < 1.3 * relative_error(y_float, y_true)


class TestBranchOverhead:
    def test_counts(self):
        o = branch_overhead(4, 128, 16, 8, group_size=64, branch_bits=8)
        assert (o.main_macs, o.branch_macs) == (4 * 128 * 16, 4 * 128 * 8 + 4 * 8 * 16)
        assert (o.main_terms, o.branch_terms) == (4 * 16 * 2, 4 * 16)
        assert o.main_code_bytes == (4 * 128 + 16 * 128) // 2
        assert o.main_scale_bytes == (4 + 16) * 2 * 4 and o.out_bytes == 4 * 16 * 4
        assert (o.branch_act_bytes, o.branch_weight_bytes) == (4 * 128, 128 * 8 + 8 * 16)
        assert o.branch_scale_bytes == (4 + 16) * 4 and o.onchip_u_bytes == 4 * 8
        assert o.main_bytes == 1280 + 160 + 256 and o.branch_bytes == 512 + 1152 + 80
        assert o.mac_fraction == pytest.approx(8 * (128 + 16) / (128 * 16))
        assert o.byte_fraction_shared_x == pytest.approx((1152 + 80) / 1696)

    def test_large_layer_rank_zero_and_sixteen_bits(self):
        o = branch_overhead(4096, 3072, 3072, 32)
        assert o.mac_fraction == pytest.approx(32 * 6144 / 3072**2)  # 2.1 %
        assert 0.20 < o.byte_fraction < 0.21 and o.byte_fraction_shared_x < 0.004
        z = branch_overhead(4096, 3072, 3072, 0)
        assert z.branch_macs == z.branch_bytes == z.branch_terms == 0
        w = branch_overhead(3, 64, 5, 3, branch_bits=12)
        assert (w.branch_act_bytes, w.branch_weight_bytes) == (288, 288 + 23)
        with pytest.raises(ValueError, match="group_size=64 does not divide K=100"):
            branch_overhead(1, 100, 1, 1)


def _nvfp4_pair(seed: int, m: int = 5, n: int = 6, k: int = 64):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)) * np.exp(rng.normal(0, 2, (m, k // 16))).repeat(16, 1)
    b = rng.standard_normal((n, k)) * np.exp(rng.normal(0, 2, (n, k // 16))).repeat(16, 1)
    return quantize_nvfp4(a), quantize_nvfp4(b)


class TestNVFP4:
    def test_operands(self):
        a, b = _nvfp4_pair(0)
        qa, sa, qb, sb = nvfp4_group_operands(a, b)
        assert qa.dtype == np.int8 and qa.min() >= -12 and qb.max() <= 12
        np.testing.assert_array_equal(qa, 2 * e2m1_decode(a.codes))
        t = np.float32(np.float32(a.global_scale) * np.float32(b.global_scale))
        np.testing.assert_array_equal(sa, a.scales.astype(np.float32) / 4)
        np.testing.assert_array_equal(sb, (b.scales.astype(np.float32) * t).astype(np.float32))
        with pytest.raises(ValueError, match="qx holds 12, outside -8..7"):
            group_dots(np.full((1, 16), 12), np.ones((1, 16), int), 16)

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_matches_nvfp4_gemm_within_the_bounds(self, seed):
        a, b = _nvfp4_pair(seed)
        qa, sa, qb, sb = nvfp4_group_operands(a, b)
        y = nvfp4_dequant_gemm(a, b)
        dots = group_dots(qa, qb, 16, code_bits=8)
        t = float(np.float32(np.float32(a.global_scale) * np.float32(b.global_scale)))
        s = np.abs(dots * (a.scales.astype(np.float64)[:, None, :] / 4 * t
                           * b.scales.astype(np.float64)[None, :, :])).sum(-1)
        bound = dequant_error_bound(dots, sa, sb, GroupDequantSpec()) + 2.0**-24 * s
        # the exact sum_g sa sb t dot_g (float64 rounds at 2**-53: far inside the slack)
        exact = (dots / 4 * a.scales.astype(np.float64)[:, None, :]
                 * b.scales.astype(np.float64)[None, :, :]).sum(-1) * t
        assert np.all(np.abs(y - exact) <= bound * 1.001)
        ref = nvfp4_gemm(a, b)
        assert np.all(np.abs(y - ref) <= bound + (4 + 2) * 2.0**-24 * s * 1.001)
        assert np.abs(y - ref).max() > 0  # one rounding here, several there

    def test_exact_for_power_of_two_scales(self):
        rng = np.random.default_rng(7)
        m, n, k = 4, 5, 64

        def tensor(rows):
            codes = rng.integers(0, 16, (rows, k)).astype(np.uint8)
            scales = (2.0 ** rng.integers(-2, 3, (rows, k // 16))).astype(
                ml_dtypes.float8_e4m3fn)
            return NVFP4Tensor(codes, scales, 0.5)

        a, b = tensor(m), tensor(n)
        y = nvfp4_dequant_gemm(a, b)
        np.testing.assert_array_equal(y, nvfp4_gemm(a, b))
        exact = dequantize_nvfp4(a).astype(np.float64) @ dequantize_nvfp4(b).T.astype(np.float64)
        np.testing.assert_array_equal(y, exact.astype(np.float32))

    def test_group_dot_width(self):
        codes = np.full((1, 16), 7, np.uint8)  # +6 everywhere: 2 * 6 = 12
        a = NVFP4Tensor(codes, np.ones((1, 1), ml_dtypes.float8_e4m3fn), 1.0)
        qa, sa, qb, sb = nvfp4_group_operands(a, a)
        assert group_dots(qa, qb, 16, code_bits=8).item() == 2304  # 13 signed bits
        assert nvfp4_dequant_gemm(a, a, GroupDequantSpec(dot_bits=13)).item() == 576.0
        with pytest.raises(ValueError, match="dots holds 2304, outside -2048..2047"):
            nvfp4_dequant_gemm(a, a, GroupDequantSpec(dot_bits=12))


class TestGroupDequantGeneralization:
    def test_code_bits_terms_bound_and_products(self):
        with pytest.raises(ValueError, match="code_bits=9 must be an int in 2..8"):
            group_dots(np.ones((1, 16), int), np.ones((1, 16), int), 16, code_bits=9)
        assert group_dots(np.full((1, 16), -128), np.full((1, 16), -128), 16,
                          code_bits=8).item() == 16 * 2**14
        with pytest.raises(ValueError, match="p holds -1.0 < 0"):
            encode_products(-np.ones((1, 1, 1)), GroupDequantSpec())
        with pytest.raises(ValueError, match=r"dots \(1, 1, 2\) and p \(1, 1, 1\)"):
            terms_error_bound(np.ones((1, 1, 2)), np.ones((1, 1, 1)), GroupDequantSpec())
        # all terms dead: no error, and no NaN from an empty shared exponent
        assert terms_error_bound(np.ones((1, 1, 2)), np.zeros((1, 1, 2)),
                                 GroupDequantSpec()).item() == 0.0
        GroupDequantSpec(dot_bits=40, mant_bits=16, guard_bits=2)  # 58-bit terms
        with pytest.raises(ValueError, match="dot_bits=41 must be an int in 2..40"):
            GroupDequantSpec(dot_bits=41)


def test_numpy_and_torch_give_the_same_values():
    rng = np.random.default_rng(9)
    x, down, up = (rng.standard_normal(s).astype(np.float32) for s in ((M, K), (R, K), (N, R)))
    u32 = rng.integers(-(2**20), 2**20, (M, R))
    for fn, args in ((quantize_symmetric, (x, 8)), (requantize_rows, (u32, 8)),
                     (branch_error_bound, (x, down, up)),
                     (requant_error_bound, (u32[:, 0] & 7, up.T, x[:, 0] ** 2, up[:, 0] ** 2)),
                     (encode_products, (np.abs(x)[None], GroupDequantSpec()))):
        ref = fn(*args)
        got = fn(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args))
        for r, g in zip(ref if isinstance(ref, tuple) else (ref,),
                        got if isinstance(got, tuple) else (got,), strict=True):
            assert isinstance(g, torch.Tensor)
            np.testing.assert_array_equal(g.numpy(), r)
    ops = quantize_branch(torch.from_numpy(x), down, up)
    assert isinstance(ops.xl, np.ndarray)  # a structured result keeps numpy arrays
