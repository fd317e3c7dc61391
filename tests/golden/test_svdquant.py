"""SVDQuant golden: INT4 quantizer, W4A4 GEMM contract, layer quantization, LoRA, GELU shift."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from golden.svdquant import (
    GELU_SHIFT,
    SVDQuantLinear,
    dequantize_int4,
    fold_act_shift,
    quantize_int4,
    quantize_linear,
    relative_error,
    smoothing_factors,
    w4a4_gemm,
)
from golden.svdquant_ops import fma_f32
from golden.svdquant_synth import outlier_layer


def _round_f32(q: Fraction) -> np.float32:
    """Exact round-to-nearest-even of a rational to binary32 (independent of numpy casts)."""
    if q == 0:
        return np.float32(0.0)
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, -126) - 23)
    m = a / quantum
    n = m.numerator // m.denominator
    rem = m - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    return np.float32(float(n * quantum) * (1 if q > 0 else -1))


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def synth():
    return outlier_layer(64, 256, 64, seed=1)


@pytest.fixture(scope="module")
def layers(synth):
    return {m: quantize_linear(synth.weight, synth.calib_x, m, rank=16) for m in
            ("naive", "smooth", "svdquant")}


def _test_error(layer, synth) -> float:
    y_ref = synth.test_x.astype(np.float64) @ synth.weight.T.astype(np.float64)
    return relative_error(layer(synth.test_x), y_ref)


class TestQuantizeInt4:
    @pytest.mark.parametrize("signed", [True, False])
    def test_round_trip_bound_and_extremes(self, signed):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 128)) * np.exp(rng.normal(0, 3, (16, 1)))
        x = x if signed else np.abs(x)
        codes, scales = quantize_int4(x, group_size=32, signed=signed)
        assert codes.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (16, 4)
        deq = dequantize_int4(codes, scales, 32)
        s = np.repeat(scales.astype(np.float64), 32, axis=1)
        assert np.all(np.abs(x.astype(np.float32) - deq) <= s / 2 * (1 + 2.0**-20))
        g = np.abs(x.astype(np.float32)).reshape(16, 4, 32)
        at_max = np.take_along_axis(codes.reshape(16, 4, 32), g.argmax(-1)[..., None], -1)
        if signed:
            assert codes.min() >= -7 and codes.max() <= 7  # -8 unreachable with absmax / 7
            assert np.all(np.abs(at_max) == 7)
        else:
            assert codes.min() >= 0 and np.all(at_max == 15)

    def test_matches_torch_float32_reference(self):
        import torch

        x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32) * 3
        codes, scales = quantize_int4(torch.from_numpy(x), group_size=16)
        t = torch.from_numpy(x).reshape(8, 4, 16)
        s = t.abs().amax(-1) / 7.0
        q = (t / s[..., None]).round().clamp(-8, 7).reshape(8, 64)
        np.testing.assert_array_equal(codes, q.numpy().astype(np.int8))
        np.testing.assert_array_equal(_bits(scales), _bits(s.numpy()))

    def test_ties_to_even_and_zero_groups(self):
        x = np.array([[7.0, 2.5, -2.5, 3.5, 0.5, -1.5, 0.0, 1.0], [0.0] * 8])
        codes, scales = quantize_int4(x, group_size=8)
        np.testing.assert_array_equal(codes[0], [7, 2, -2, 4, 0, -2, 0, 1])
        np.testing.assert_array_equal(codes[1], 0)
        assert scales[0, 0] == 1.0 and scales[1, 0] == 1.0  # zero group: scale 1 by convention

    @pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
    def test_16bit_scales(self, dtype):
        x = np.random.default_rng(2).standard_normal((4, 64))
        codes, scales = quantize_int4(x, group_size=64, scale_dtype=dtype)
        np_dt = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
        np.testing.assert_array_equal(scales.astype(np_dt).astype(np.float32), scales)
        ref = np.clip(np.rint(x.astype(np.float32) / scales), -8, 7)
        np.testing.assert_array_equal(codes, ref)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(arrays(np.float32, (3, 32), elements=st.floats(-1e6, 1e6, width=32)), st.booleans())
    def test_round_trip_property(self, x, signed):
        x = x if signed else np.abs(x)
        codes, scales = quantize_int4(x, group_size=16, signed=signed)
        s = np.repeat(scales.astype(np.float64), 16, axis=1)
        err = np.abs(x.astype(np.float64) - codes * s)
        normal = s >= 2.0**-126
        assert np.all(err[normal] <= s[normal] / 2 * (1 + 2.0**-20))
        assert codes.min() >= (-7 if signed else 0) and codes.max() <= (7 if signed else 15)

    def test_leading_dims(self):
        x = np.random.default_rng(3).standard_normal((2, 3, 64))
        codes, scales = quantize_int4(x, group_size=32)
        c2, s2 = quantize_int4(x.reshape(6, 64), group_size=32)
        assert codes.shape == (2, 3, 64) and scales.shape == (2, 3, 2)
        np.testing.assert_array_equal(codes.reshape(6, 64), c2)


class TestW4A4Gemm:
    @staticmethod
    def _operands(m, n, k, seed, act_signed=True):
        rng = np.random.default_rng(seed)
        lo, hi = (-8, 8) if act_signed else (0, 16)
        qx = rng.integers(lo, hi, (m, k)).astype(np.int8)
        qw = rng.integers(-8, 8, (n, k)).astype(np.int8)
        qx[0], qw[0] = lo, -8  # the extreme codes
        qx[1], qw[1] = hi - 1, 7
        sx = (rng.uniform(0.5, 2, (m, k // 64)) * 2.0 ** rng.integers(-12, 4, (m, k // 64)))
        sw = (rng.uniform(0.5, 2, (n, k // 64)) * 2.0 ** rng.integers(-12, 4, (n, k // 64)))
        return qx, sx.astype(np.float32), qw, sw.astype(np.float32)

    @pytest.mark.parametrize("act_signed", [True, False])
    def test_bit_exact_against_float64_model(self, act_signed):
        qx, sx, qw, sw = self._operands(24, 20, 256, 4, act_signed)
        y = w4a4_gemm(qx, sx, qw, sw, 64, act_signed=act_signed)
        dots = np.einsum("mgk,ngk->mng", qx.reshape(24, 4, 64).astype(np.int64),
                         qw.reshape(20, 4, 64).astype(np.int64))
        acc = np.zeros((24, 20), np.float32)
        for g in range(4):  # float64 products are exact; each cast is the one binary32 rounding
            s = (sx[:, g, None].astype(np.float64) * sw[None, :, g]).astype(np.float32)
            t = (s.astype(np.float64) * dots[:, :, g]).astype(np.float32)
            acc = (acc.astype(np.float64) + t).astype(np.float32)
        np.testing.assert_array_equal(_bits(y), _bits(acc))

    def test_fma_contract_bit_exact_against_rationals(self):
        qx, sx, qw, sw = self._operands(4, 5, 256, 5)
        y = w4a4_gemm(qx, sx, qw, sw, 64, fma=True)
        dots = np.einsum("mgk,ngk->mng", qx.reshape(4, 4, 64).astype(np.int64),
                         qw.reshape(5, 4, 64).astype(np.int64))
        for i in range(4):
            for j in range(5):
                acc = np.float32(0)
                for g in range(4):
                    s = _round_f32(Fraction(float(sx[i, g])) * Fraction(float(sw[j, g])))
                    acc = _round_f32(Fraction(float(acc)) + Fraction(float(s)) * int(dots[i, j, g]))
                assert _bits(y[i, j]) == _bits(acc)
        assert relative_error(y, w4a4_gemm(qx, sx, qw, sw, 64)) < 1e-6

    def test_fma_f32_random_and_double_rounding_ties(self):
        rng = np.random.default_rng(6)
        a = (rng.uniform(-2, 2, 300) * 2.0 ** rng.integers(-30, 30, 300)).astype(np.float32)
        b = (rng.uniform(-2, 2, 300) * 2.0 ** rng.integers(-30, 30, 300)).astype(np.float32)
        c = (-(a.astype(np.float64) * b) * rng.uniform(0.5, 1.5, 300)).astype(np.float32)
        c[::3] = rng.standard_normal(100).astype(np.float32)
        # exact 1 + 2**-24 + 2**-60 (and 1 + 2**-23 + 2**-24 - 2**-60): float64 lands on a binary32
        # midpoint, so a plain cast of the float64 sum rounds the wrong way.
        a = np.append(a, np.float32(16773121 * 2.0**-60)).astype(np.float32)
        a = np.append(a, np.float32(5593771 * 2.0**-60)).astype(np.float32)
        b = np.append(b, [4097, 12285]).astype(np.float32)
        c = np.append(c, [1.0, 1 + 2.0**-23]).astype(np.float32)
        r = fma_f32(a, b, c)
        ref = [_round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
               for x, y, z in zip(a, b, c, strict=True)]
        np.testing.assert_array_equal(_bits(r), _bits(np.array(ref, np.float32)))
        assert r[-2] == np.float32(1 + 2.0**-23) and r[-1] == np.float32(1 + 2.0**-23)
        naive = (a[-2:].astype(np.float64) * b[-2:] + c[-2:]).astype(np.float32)
        assert np.all(naive != r[-2:])

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(*[st.floats(-(2.0**60), 2.0**60, width=32) for _ in range(3)])
    def test_fma_f32_property(self, a, b, c):
        exact = Fraction(a) * Fraction(b) + Fraction(c)
        r = fma_f32(a, b, c)
        if exact == 0:  # IEEE signed-zero rules: float64 gets them right for an exact zero
            assert r == 0 and np.signbit(r) == np.signbit(np.float64(a) * b + c)
        else:
            assert _bits(r) == _bits(_round_f32(exact))

    def test_close_to_dequantized_product(self):
        qx, sx, qw, sw = self._operands(8, 8, 128, 7)
        ref = dequantize_int4(qx, sx) @ dequantize_int4(qw, sw).T
        assert relative_error(w4a4_gemm(qx, sx, qw, sw), ref) < 1e-6


class TestActShiftFold:
    def test_fold_is_exact_identity(self):
        rng = np.random.default_rng(8)  # dyadic data: every float64 operation below is exact
        w = rng.integers(-64, 64, (6, 32)) / 64.0
        x = rng.integers(-32, 32, (5, 32)) / 16.0
        b = rng.integers(-8, 8, 6) / 4.0
        shift = GELU_SHIFT / 2.0 ** rng.integers(-2, 3, 32)
        folded = fold_act_shift(b, w, shift)
        np.testing.assert_array_equal((x + shift) @ w.T + folded, x @ w.T + b)

    def test_unsigned_layer(self):
        import torch

        rng = np.random.default_rng(9)
        pre = rng.standard_normal((96, 128)) * np.exp(rng.normal(0, 1, 128))
        x = torch.nn.functional.gelu(torch.from_numpy(pre)).numpy()
        w = rng.standard_normal((32, 128)) / np.sqrt(128)
        bias = rng.standard_normal(32)
        y_ref = x[48:] @ w.T + bias
        uns = quantize_linear(w, x[:48], "svdquant", rank=8, bias=bias, act_unsigned=True)
        sig = quantize_linear(w, x[:48], "svdquant", rank=8, bias=bias)
        qx, sx = uns.quantize_input(x[48:])
        assert qx.min() >= 0 and qx.max() == 15
        manual = (w4a4_gemm(qx, sx, uns.qweight, uns.wscales, act_signed=False)
                  + ((x[48:].astype(np.float32) / uns.smooth) @ uns.lora_down.T) @ uns.lora_up.T
                  + uns.epilogue_bias)
        np.testing.assert_array_equal(uns(x[48:]), manual)
        wq = dequantize_int4(uns.qweight, uns.wscales)
        np.testing.assert_allclose(uns.epilogue_bias, bias - wq @ (GELU_SHIFT / uns.smooth),
                                   rtol=1e-6, atol=1e-6)
        assert relative_error(uns(x[48:]), y_ref) < 0.9 * relative_error(sig(x[48:]), y_ref)


class TestQuantizeLinear:
    def test_error_ordering(self, layers, synth):
        err = {m: _test_error(layer, synth) for m, layer in layers.items()}
        assert err["svdquant"] < 0.5 * err["smooth"] < 0.5 * 0.8 * err["naive"], err

    def test_error_falls_with_rank(self, synth):
        errs = [_test_error(quantize_linear(synth.weight, synth.calib_x, rank=r), synth)
                for r in (0, 8, 16, 32)]
        assert all(b < 0.9 * a for a, b in zip(errs, errs[1:], strict=False)), errs

    def test_parts(self, layers, synth):
        naive, smooth, svd = layers["naive"], layers["smooth"], layers["svdquant"]
        assert np.all(naive.smooth == 1) and naive.rank == 0 and naive.alpha is None
        assert smooth.rank == 0 and not np.all(smooth.smooth == 1) and 0 < smooth.alpha < 1
        assert svd.rank == 16 and svd.lora_down.shape == (16, 256) and svd.lora_up.shape == (64, 16)
        assert svd.qweight.dtype == np.int8 and svd.qweight.min() >= -8 and svd.qweight.max() <= 7
        assert svd.wscales.shape == (64, 4) and svd.smooth.shape == (256,)
        for a in (svd.lora_down, svd.lora_up):
            np.testing.assert_array_equal(a.astype(ml_dtypes.bfloat16).astype(np.float32), a)
        assert relative_error(svd.effective_weight(), synth.weight) < 0.15
        lam = smoothing_factors(synth.calib_x, synth.weight, svd.alpha)
        np.testing.assert_array_equal(svd.smooth, lam)

    def test_torch_inputs_bias_and_fixed_alpha(self, synth):
        import torch

        bias = np.arange(64, dtype=np.float32) / 8
        a = quantize_linear(synth.weight, synth.calib_x, rank=8, bias=bias, alpha=0.5)
        b = quantize_linear(torch.from_numpy(synth.weight), torch.from_numpy(synth.calib_x),
                            rank=8, bias=torch.from_numpy(bias), alpha=0.5)
        assert a.alpha == 0.5
        np.testing.assert_array_equal(a(synth.test_x), b(torch.from_numpy(synth.test_x)))
        nob = quantize_linear(synth.weight, synth.calib_x, rank=8, alpha=0.5)
        np.testing.assert_allclose(a(synth.test_x) - nob(synth.test_x), np.broadcast_to(bias,
                                   (64, 64)), atol=1e-5)
        assert a(synth.test_x[:6].reshape(2, 3, 256)).shape == (2, 3, 64)

    def test_nvfp4_format(self, synth):
        from golden.nvfp4 import nvfp4_gemm

        lay = {m: quantize_linear(synth.weight, synth.calib_x, m, rank=16, fmt="nvfp4")
               for m in ("naive", "smooth", "svdquant")}
        err = {m: _test_error(v, synth) for m, v in lay.items()}
        assert err["svdquant"] < 0.5 * err["smooth"] < 0.5 * err["naive"], err
        svd = lay["svdquant"]
        assert svd.fmt == "nvfp4" and svd.group_size == 16 and svd.wscales.shape == (64, 16)
        assert svd.qweight.dtype == np.uint8
        x = synth.test_x[:8]
        manual = (nvfp4_gemm(svd.quantize_input(x), svd._nvfp4_weight())
                  + ((x / svd.smooth) @ svd.lora_down.T) @ svd.lora_up.T + svd.epilogue_bias)
        np.testing.assert_array_equal(svd(x), manual)

    def test_smoothing_factor_rules(self):
        x = np.array([[4.0, 0.0, 1.0, 9.0]])
        w = np.array([[1.0, 2.0, 0.0, 4.0]])
        np.testing.assert_allclose(smoothing_factors(x, w, 0.5), [2.0, 1.0, 1.0, 1.5])
        huge = smoothing_factors(np.array([[1e300, 1.0]]), np.array([[1e-300, 1.0]]), 0.5)
        np.testing.assert_array_equal(huge, [1.0, 1.0])  # overflow -> all ones


class TestWithLora:
    @pytest.mark.parametrize("branch_dtype,tol", [("float32", 2e-6), ("bfloat16", 1e-2)])
    def test_equals_separate_lora(self, synth, branch_dtype, tol):
        layer = quantize_linear(synth.weight, synth.calib_x, rank=8, alpha=0.5,
                                branch_dtype=branch_dtype)
        rng = np.random.default_rng(10)
        a = rng.standard_normal((4, 256)) / 16
        b = rng.standard_normal((64, 4)) / 4
        lo = layer.with_lora(a, b, strength=0.75)
        x = synth.test_x.astype(np.float64)
        extra = 0.75 * (x @ a.T) @ b.T
        diff = lo(synth.test_x).astype(np.float64) - layer(synth.test_x)
        assert relative_error(diff, extra) < tol
        assert lo.rank == 32 and layer.rank == 8
        assert np.all(lo.lora_down[8:16] == 0) and np.all(lo.lora_up[:, 20:] == 0)
        assert lo.qweight is layer.qweight and lo.wscales is layer.wscales
        assert lo.with_lora(a, b).rank == 48


class TestBadInput:
    W = np.ones((64, 128), np.float32)
    X = np.ones((4, 128), np.float32)

    @pytest.mark.parametrize("call,match", [
        (lambda W, X: quantize_linear(W[0], X), r"weight must be 2-D, got shape \(128,\)"),
        (lambda W, X: quantize_linear(W, X[:, :100]), "calib_x has 100 channels"),
        (lambda W, X: quantize_linear(W, X, group_size=48), "group_size=48 does not divide K=128"),
        (lambda W, X: quantize_linear(np.where(W > 0, np.nan, W), X), r"weight holds nan at index"),
        (lambda W, X: quantize_linear(W, X * np.inf), "calib_x holds inf"),
        (lambda W, X: quantize_linear(W, X, rank=65), r"rank=65 must be an int in 0..min\(N, K\)"),
        (lambda W, X: quantize_linear(W, X, method="gptq"), "method='gptq' unknown"),
        (lambda W, X: quantize_linear(W, X, alpha=1.5), "alpha=1.5"),
        (lambda W, X: quantize_linear(W, X, branch_dtype="fp8"), "branch_dtype='fp8'"),
        (lambda W, X: quantize_linear(W, X, fmt="mxfp4"), "fmt='mxfp4' unknown"),
        (lambda W, X: quantize_linear(W, X, fmt="nvfp4", act_unsigned=True), "act_unsigned=True"),
        (lambda W, X: quantize_linear(W, X, bias=np.ones(3)), r"bias has shape \(3,\)"),
        (lambda W, X: quantize_linear(W, -X, act_unsigned=True), "calib_x holds -1.0"),
        (lambda W, X: quantize_int4(X, group_size=3), "group_size=3 does not divide K=128"),
        (lambda W, X: quantize_int4(-X, signed=False), "x holds -1.0"),
        (lambda W, X: quantize_int4(X, scale_dtype="int8"), "scale_dtype='int8'"),
        (lambda W, X: quantize_int4(X * 1e6, scale_dtype="float16"), "overflows"),
        (lambda W, X: w4a4_gemm(np.full((2, 64), 8), np.ones((2, 1)), np.ones((2, 64), int),
                                np.ones((2, 1))), "qx holds 8"),
        (lambda W, X: w4a4_gemm(np.ones((2, 64), int), np.ones((2, 2)), np.ones((2, 64), int),
                                np.ones((2, 1))), r"sx has shape \(2, 2\)"),
        (lambda W, X: w4a4_gemm(np.ones((2, 64)), np.ones((2, 1)), np.ones((2, 64), int),
                                np.ones((2, 1))), "qx must hold integers"),
    ])
    def test_raises(self, call, match):
        with pytest.raises(ValueError, match=match):
            call(self.W, self.X)

    def test_fold_and_layer_construction(self, layers):
        with pytest.raises(ValueError, match=r"shift has shape \(3,\)"):
            fold_act_shift(np.ones(2), np.ones((2, 4)), np.ones(3))
        lay = layers["naive"]
        with pytest.raises(ValueError, match=r"wscales has shape \(64, 3\)"):
            SVDQuantLinear(lay.qweight, np.ones((64, 3)), lay.smooth, lay.lora_down, lay.lora_up)
        with pytest.raises(ValueError, match="qweight must hold signed integer codes -8..7"):
            SVDQuantLinear(lay.qweight.astype(np.float32), lay.wscales, lay.smooth,
                           lay.lora_down, lay.lora_up)

    def test_layer_call_and_lora_shapes(self, layers):
        layer: SVDQuantLinear = layers["svdquant"]
        with pytest.raises(ValueError, match="x has 5 channels"):
            layer(np.ones((2, 5)))
        with pytest.raises(ValueError, match=r"A has shape \(2, 7\)"):
            layer.with_lora(np.ones((2, 7)), np.ones((64, 2)))
        with pytest.raises(ValueError, match=r"B has shape \(64, 3\)"):
            layer.with_lora(np.ones((2, 256)), np.ones((64, 3)))
        with pytest.raises(ValueError, match="strength=nan"):
            layer.with_lora(np.ones((2, 256)), np.ones((64, 2)), strength=float("nan"))
