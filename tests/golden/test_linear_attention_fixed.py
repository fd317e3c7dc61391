"""Bit-exact fixed-point linear attention: Python-int reference, error bounds, widths."""

from __future__ import annotations

import numpy as np
import pytest

from golden.linear_attention import linear_attention
from golden.linear_attention_fixed import (
    accumulator_widths,
    datapath_error_bound,
    linear_attention_fixed,
    linear_attention_int,
    quantize_int8,
)


def _rshift_round(x: int, s: int) -> int:
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def _reference(qc, kc, vc, fo=8, r=16, f=24) -> np.ndarray:
    """The datapath written out with Python ints for one head: (Nq, D), (N, D), (N, Dv)."""
    qc, kc, vc = (np.asarray(t).tolist() for t in (qc, kc, vc))
    nq, n, d, dv = len(qc), len(kc), len(kc[0]), len(vc[0])
    out = np.zeros((nq, dv), dtype=np.int64)
    for i in range(nq):
        w = [sum(max(kc[t][j], 0) * max(qc[i][j], 0) for j in range(d)) for t in range(n)]
        den = sum(w)
        if den == 0:
            continue
        sh = max(den.bit_length() - r, 0)
        den_n = _rshift_round(den, sh)
        rcp = ((1 << (f + r)) + den_n // 2) // den_n
        for e in range(dv):
            num_n = _rshift_round(sum(vc[t][e] * w[t] for t in range(n)), sh)
            o = _rshift_round(num_n * rcp, f + r - fo)
            lim = 1 << (7 + fo)
            out[i, e] = min(max(o, -lim), lim - 1)
    return out


def _codes(shape, seed, lo=-128, hi=128):
    return np.random.default_rng(seed).integers(lo, hi, size=shape, dtype=np.int64)


def test_hand_example() -> None:
    """q = [3, -1]; k = [[1, 2], [2, -5]]; v = [[10], [-4]]:
    weights relu(k) . relu(q) = [3, 6], num = 10*3 - 4*6 = 6, den = 9, o = 2/3.
    Fo = 8, R = 16: den fits, rcp = round(2**40 / 9), out = round(6 rcp / 2**32) = 171 (170.67).
    R = 2: sh = 2, den_n = round(9/4) = 2, num_n = round(6/4) = 2, out = 256 (1.0, coarse)."""
    q, k, v = np.array([[3, -1]]), np.array([[1, 2], [2, -5]]), np.array([[10], [-4]])
    assert linear_attention_int(q, k, v).tolist() == [[171]]
    assert (6 * ((2**40 + 4) // 9) + 2**31) >> 32 == 171
    assert linear_attention_int(q, k, v, den_bits=2).tolist() == [[256]]
    assert linear_attention_int(q, k, v, out_frac_bits=0).tolist() == [[1]]


@pytest.mark.parametrize("fo,r,f", [(8, 16, 24), (12, 6, 10), (0, 3, 4), (16, 24, 28)])
def test_matches_python_int_reference(fo: int, r: int, f: int) -> None:
    qc, kc, vc = _codes((2, 5, 6), 1), _codes((2, 9, 6), 2), _codes((2, 9, 3), 3)
    qc[0, 0] = 127  # extremes
    kc[0, :, :] = np.where(np.arange(6) % 2, 127, -128)
    vc[1, 0] = -128
    qc[1, 2] = -5  # an all-zero query -> den 0
    got = linear_attention_int(qc, kc, vc, fo, r, f)
    for h in range(2):
        np.testing.assert_array_equal(got[h], _reference(qc[h], kc[h], vc[h], fo, r, f))
    np.testing.assert_array_equal(got[1, 2], 0)


def test_deterministic_and_head_independent() -> None:
    qc, kc, vc = _codes((2, 3, 64, 32), 4), _codes((2, 3, 64, 32), 5), _codes((2, 3, 64, 32), 6)
    a = linear_attention_int(qc, kc, vc)
    np.testing.assert_array_equal(a, linear_attention_int(qc.copy(), kc.copy(), vc.copy()))
    np.testing.assert_array_equal(a[1, 2], linear_attention_int(qc[1, 2], kc[1, 2], vc[1, 2]))
    assert a.dtype == np.int64 and a.min() >= -(1 << 15) and a.max() < (1 << 15)


@pytest.mark.parametrize("fo,r,f", [(8, 16, 24), (10, 8, 8), (12, 6, 10)])
def test_datapath_error_within_proved_bound(fo: int, r: int, f: int) -> None:
    """|out / 2**Fo - num/den| <= datapath_error_bound(|num/den|), elementwise."""
    qc, kc, vc = _codes((2, 256, 32), 7), _codes((2, 256, 32), 8), _codes((2, 256, 32), 9)
    out = linear_attention_int(qc, kc, vc, fo, r, f) / 2.0**fo
    w = np.maximum(qc, 0) @ np.maximum(kc, 0).transpose(0, 2, 1)  # (2, Nq, N) int64
    exact = (w @ vc) / w.sum(-1, keepdims=True)
    err = np.abs(out - exact)
    bound = datapath_error_bound(exact, fo, r, f)
    assert np.all(err <= bound + 1e-12), float((err / bound).max())
    assert (err / bound).max() > 0.5  # tight: measured 0.83..0.996 of the bound


def test_denominator_zero_rule_matches_float() -> None:
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal((1, 1, 8, 16)).astype(np.float32) for _ in range(3))
    q[0, 0, 3] = -np.abs(q[0, 0, 3])
    fixed = linear_attention_fixed(q, k, v).dequantize()
    np.testing.assert_array_equal(fixed[0, 0, 3], linear_attention(q, k, v)[0, 0, 3])
    np.testing.assert_array_equal(fixed[0, 0, 3], 0.0)
    np.testing.assert_array_equal(linear_attention_fixed(q, -np.abs(k), v).out_codes, 0)


def test_error_vs_float() -> None:
    """End to end vs float on random N(0,1) q, k, v (2 heads, 512 tokens, d 32).

    Datapath alone (vs float on the int8-dequantized inputs): within datapath_error_bound * s_v
    (+ fp32 slack). With int8 quantization: measured max |err| 0.076 v-LSB (s_v), mean 0.0135;
    asserted < 0.2 s_v max and < 0.05 s_v mean."""
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((1, 2, 512, 32)).astype(np.float32) for _ in range(3))
    res = linear_attention_fixed(q, k, v)
    fixed = res.dequantize()
    sv = res.v_scale
    deq = [(quantize_int8(t)[0] * quantize_int8(t)[1]).astype(np.float32) for t in (q, k, v)]
    ref_q = linear_attention(*deq).astype(np.float64)
    bound = datapath_error_bound(np.abs(ref_q) / sv) * sv + 1e-5 * np.abs(ref_q) + 1e-7
    assert np.all(np.abs(fixed - ref_q) <= bound)
    err = np.abs(fixed - linear_attention(q, k, v))
    print(f"max err {err.max() / sv:.4f} s_v, mean {err.mean() / sv:.4f} s_v")
    assert err.max() < 0.2 * sv and err.mean() < 0.05 * sv


def test_worst_case_no_overflow() -> None:
    """N = 4096, D = 32, every operand at its extreme: out = -128 / 127 exactly."""
    n, d = 4096, 32
    q, k = np.full((1, d), 127), np.full((n, d), 127)
    assert linear_attention_int(q, k, np.full((n, 2), -128)).tolist() == [[-128 * 256] * 2]
    assert linear_attention_int(q, k, np.full((n, 2), 127)).tolist() == [[127 * 256] * 2]


def test_quantize_int8() -> None:
    """Half away from zero (golden.fixed_point.to_fixed), symmetric -127..127, absmax scale."""
    codes, scale = quantize_int8(np.array([0.5, -0.5, 1.5, -2.5, 1000.0]), scale=1.0)
    assert codes.tolist() == [1, -1, 2, -3, 127] and scale == 1.0
    codes, scale = quantize_int8(np.array([-2.54, 1.0, 0.0]))
    assert scale == 2.54 / 127 and codes.tolist() == [-127, 50, 0]
    assert quantize_int8(np.zeros(3)) == (pytest.approx(np.zeros(3)), 1.0)


def test_accumulator_widths() -> None:
    w = accumulator_widths(1024, 32)
    assert (w.vk, w.ksum, w.num, w.den, w.product, w.out) == (25, 17, 37, 29, 49, 16)
    assert accumulator_widths(132104, 32).vk == 32 and accumulator_widths(132105, 32).vk == 33
    assert accumulator_widths(16384, 32).num == 41


def test_bad_inputs() -> None:
    ok = np.zeros((4, 8), dtype=np.int64)
    with pytest.raises(ValueError, match=r"q holds 200, outside int8 range"):
        linear_attention_int(ok + 200, ok, ok)
    with pytest.raises(ValueError, match=r"k must hold integers, got dtype float64"):
        linear_attention_int(ok, ok.astype(np.float64), ok)
    with pytest.raises(ValueError, match=r"head_dim of q \(8\) and k \(6\) differ"):
        linear_attention_int(ok, ok[:, :6], ok)
    with pytest.raises(ValueError, match=r"tokens of k \(4\) and v \(3\) differ"):
        linear_attention_int(ok, ok, ok[:3])
    with pytest.raises(ValueError, match=r"v must be at least 2-D .* got shape \(8,\)"):
        linear_attention_int(ok, ok, ok[0])
    with pytest.raises(ValueError, match=r"leading dims differ"):
        linear_attention_int(ok[None], ok, ok)
    with pytest.raises(ValueError, match=r"den_bits must be in 2\.\.30, got 1"):
        linear_attention_int(ok, ok, ok, den_bits=1)
    with pytest.raises(ValueError, match=r"out_frac_bits must be in 0\.\.40, got 41"):
        linear_attention_int(ok, ok, ok, out_frac_bits=41)
    f = np.ones((4, 8))
    nan = f.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"v holds a non-finite value \(nan\)"):
        linear_attention_fixed(f, f, nan)
    with pytest.raises(ValueError, match=r"q_scale must be a finite positive number, got -1\.0"):
        linear_attention_fixed(f, f, f, q_scale=-1.0)
