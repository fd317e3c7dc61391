"""Linear attention with the chain on chip: Python-int reference, exact den, extremes, error
bound, comparison with linear_attention_fixed; and the shared normalizer."""

from __future__ import annotations

import numpy as np
import pytest

from golden.int_gemm import AccumulatorOverflowError
from golden.linear_attention import linear_attention
from golden.linear_attention_chain import (
    chain_error_bound,
    ks_slice_count,
    linear_attention_chain_fixed,
    linear_attention_chain_int,
)
from golden.linear_attention_fixed import (
    datapath_error_bound,
    linear_attention_fixed,
    linear_attention_int,
    normalize,
    quantize_int8,
)


def _rsr(x: int, s: int) -> int:
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def _ref_normalize(num: int, den: int, fo: int, r: int, f: int, ob: int) -> int:
    if den == 0:
        return 0
    sh = max(den.bit_length() - r, 0)
    den_n = _rsr(den, sh)
    rcp = ((1 << (f + r)) + den_n // 2) // den_n
    o = _rsr(_rsr(num, sh) * rcp, f + r - fo)
    return min(max(o, -(1 << (ob - 1))), (1 << (ob - 1)) - 1)


def _ref_chain(qc, kc, vc, fo=8, r=16, f=24) -> np.ndarray:
    """The chain for one head with Python ints (module docstring's steps)."""
    qc, kc, vc = (np.asarray(t).tolist() for t in (qc, kc, vc))
    n, d, dv = len(kc), len(kc[0]), len(vc[0])
    kr = [[max(x, 0) for x in row] for row in kc]
    vk = [[sum(vc[t][e] * kr[t][j] for t in range(n)) for j in range(d)] for e in range(dv)]
    ks = [sum(kr[t][j] for t in range(n)) for j in range(d)]
    s = max(max(abs(x) for row in vk for x in row).bit_length() - 7, 0)
    vk8 = [[min(max(_rsr(x, s), -128), 127) for x in row] for row in vk]
    out = np.zeros((len(qc), dv), dtype=np.int64)
    for i, q in enumerate(qc):
        qr = [max(x, 0) for x in q]
        den = sum(a * b for a, b in zip(qr, ks, strict=True))
        for e in range(dv):
            num = sum(a * b for a, b in zip(qr, vk8[e], strict=True)) << s
            out[i, e] = _ref_normalize(num, den, fo, r, f, 8 + fo)
    return out


def _codes(shape, seed, lo=-128, hi=128):
    return np.random.default_rng(seed).integers(lo, hi, size=shape, dtype=np.int64)


# ------------------------------------------------------------------------------ normalize


@pytest.mark.parametrize("fo,r,f,ob", [(8, 16, 24, None), (12, 6, 10, 14), (0, 3, 4, 30),
                                       (16, 24, 28, 9)])
def test_normalize_matches_python_ints(fo: int, r: int, f: int, ob: int | None) -> None:
    """Including numerators far outside the output range (the clamp path) and den = 0."""
    rng = np.random.default_rng(fo)
    den = rng.integers(0, 1 << 40, (40, 1)) >> rng.integers(0, 40, (40, 1))
    den[:3] = [[0], [1], [(1 << 40) - 1]]
    num = rng.integers(-(1 << 61), 1 << 61, (40, 5)) >> rng.integers(0, 61, (40, 5))
    num[3:6] = den[3:6] * rng.integers(-128, 128, (3, 5))  # in range
    got = normalize(num, den, fo, r, f, ob)
    bits = 8 + fo if ob is None else ob
    want = [[_ref_normalize(int(a), int(b[0]), fo, r, f, bits) for a in row]
            for row, b in zip(num.tolist(), den.tolist(), strict=True)]
    np.testing.assert_array_equal(got, want)


def test_normalize_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"den holds -1, outside \[0, 2\*\*62\)"):
        normalize(np.array([[1]]), np.array([[-1]]))
    with pytest.raises(ValueError, match=r"num must hold integers, got dtype float64"):
        normalize(np.array([[1.0]]), np.array([[1]]))
    with pytest.raises(ValueError, match=r"out_bits must be an int in 1\.\.29 .* got 30"):
        normalize(np.array([[1]]), np.array([[1]]), out_bits=30)
    with pytest.raises(ValueError, match=r"den of shape \(3, 1\) does not broadcast to num"):
        normalize(np.ones((2, 4), np.int64), np.ones((3, 1), np.int64))


# ------------------------------------------------------------------------------- the chain


@pytest.mark.parametrize("fo,r,f", [(8, 16, 24), (12, 6, 10), (4, 20, 30)])
def test_chain_matches_python_int_reference(fo: int, r: int, f: int) -> None:
    qc, kc, vc = _codes((2, 6, 8), 1), _codes((2, 40, 8), 2), _codes((2, 40, 3), 3)
    qc[0, 0], vc[1, :5] = 127, -128
    kc[0] = np.where(np.arange(8) % 2, 127, -128)
    qc[1, 2] = -7  # all-negative query: den 0
    res = linear_attention_chain_int(qc, kc, vc, fo, r, f)
    for h in range(2):
        np.testing.assert_array_equal(res.out[h], _ref_chain(qc[h], kc[h], vc[h], fo, r, f))
    np.testing.assert_array_equal(res.out[1, 2], 0)
    assert res.out_frac_bits == fo


def test_intermediates_are_exact() -> None:
    """den = qr @ KS exactly; KS = sum_b KS_b 2**(7b) with KS_b in 0..127; nb from N;
    s = max(bitlen(max|VK|) - 7, 0); VK8 within 2**(s-1) of VK / 2**s."""
    qc, kc, vc = _codes((3, 16, 32), 4), _codes((3, 300, 32), 5), _codes((3, 300, 16), 6)
    res = linear_attention_chain_int(qc, kc, vc)
    qr, kr = np.maximum(qc, 0), np.maximum(kc, 0)
    ks = kr.sum(-2)
    np.testing.assert_array_equal(res.den, qr @ ks[..., None])
    nb = ks_slice_count(300)
    assert nb == 3 and res.ks_slices.shape == (3, nb, 32)
    assert res.ks_slices.min() >= 0 and res.ks_slices.max() <= 127
    np.testing.assert_array_equal((res.ks_slices << (7 * np.arange(nb))[:, None]).sum(-2), ks)
    np.testing.assert_array_equal(res.vk, np.swapaxes(vc, -1, -2) @ kr)
    m = np.abs(res.vk).max(axis=(-2, -1))
    want = [max(int(x).bit_length() - 7, 0) for x in m]
    assert res.shift.tolist() == want and min(want) > 0
    err = np.abs(res.vk - res.vk8 * (1 << res.shift)[:, None, None])
    assert np.all(err <= (1 << (res.shift - 1))[:, None, None]) and not res.saturated.any()
    np.testing.assert_array_equal(res.num8, qr @ np.swapaxes(res.vk8, -1, -2))
    assert [ks_slice_count(n) for n in (1, 2, 129, 130, 16384)] == [1, 2, 2, 3, 3]


def test_shift_zero_equals_linear_attention_int() -> None:
    """max |VK| <= 127 gives s = 0 and VK8 = VK: the chain is linear_attention_int exactly."""
    qc, kc, vc = _codes((2, 9, 6), 7), _codes((2, 3, 6), 8, -5, 6), _codes((2, 3, 4), 9, -6, 7)
    res = linear_attention_chain_int(qc, kc, vc)
    assert res.shift.tolist() == [0, 0]
    np.testing.assert_array_equal(res.vk8, res.vk)
    np.testing.assert_array_equal(res.out, linear_attention_int(qc, kc, vc))
    n1 = linear_attention_chain_int(qc[0], kc[0, :1], vc[0, :1])  # N = 1
    np.testing.assert_array_equal(n1.out, linear_attention_int(qc[0], kc[0, :1], vc[0, :1]))


def test_extremes() -> None:
    qc, vc = _codes((4, 8), 10), _codes((64, 8), 11)
    zero = linear_attention_chain_int(qc, np.zeros((64, 8), np.int64), vc)  # all-zero k
    assert not zero.den.any() and not zero.out.any() and not zero.num8.any()
    neg = linear_attention_chain_int(-np.abs(qc) - 1, _codes((64, 8), 12), vc)  # q < 0
    assert not neg.den.any() and not neg.out.any()
    n, d = 4096, 32  # large N, |VK| at its extreme: -128 * 127 * 4096 = -127 * 2**19
    q, k = np.full((1, d), 127), np.full((n, d), 127)
    big = linear_attention_chain_int(q, k, np.full((n, 2), -128))
    assert big.shift.tolist() == 19 and big.out.tolist() == [[-128 * 256] * 2]
    pos = linear_attention_chain_int(q, k, np.full((n, 2), 127))  # VK / 2**19 = 126.008 -> 126
    assert pos.vk8.max() == 126 and pos.out.tolist() == [[round(126 * 128 / 127 * 256)] * 2]
    with pytest.raises(AccumulatorOverflowError, match=r"VK holds -2147498880, outside"):
        linear_attention_chain_int(q, k[:1].repeat(132105, 0), np.full((132105, 1), -128))


def test_saturation_edge() -> None:
    """VK = 31 * 33 = 1023: s = 3, 1023 / 8 = 127.875 rounds to 128 and saturates to 127, an
    error of 7 = 2**s - 1 (> 2**(s-1)); o = 31, the chain gives 127 * 8 / 33 = 30.79."""
    res = linear_attention_chain_int(np.array([[1]]), np.array([[33]]), np.array([[31]]))
    assert (res.shift.tolist(), res.vk8.tolist(), bool(res.saturated)) == (3, [[127]], True)
    assert res.out.tolist() == [[round(1016 / 33 * 256)]]
    err = abs(res.out[0, 0] / 256 - 31)
    assert err > float(chain_error_bound(31, 1, 33, 3, saturated=False))
    assert err <= float(chain_error_bound(31, 1, 33, 3, saturated=True))


@pytest.mark.parametrize("n", [64, 512, 2048])
def test_error_within_bound_and_vs_linear_attention_fixed(n: int) -> None:
    """|out / 2**Fo - o| <= chain_error_bound per element (o the exact ratio on the codes).

    Measured (uniform random int8 codes, D = 32, 16 queries, v-code units): chain max error
    0.107 / 0.060 / 0.032 at N = 64 / 512 / 2048 (s = 10 / 12 / 13) against 0.002 for
    linear_attention_fixed's int32 datapath; max err/bound 0.41 .. 0.50. The int8 requantization
    of VK costs about 2**(s-1) sum(qr) / den ~ 2**(s-1) / mean(KS_j) v-LSB: VK is a random walk
    (2**s ~ sqrt(N)) while KS grows ~N, so the error falls like 1/sqrt(N); 15-50x the int32
    datapath's, yet 0.1 v-LSB at most, far below the int8 input quantization (test_float_wrapper).
    """
    qc, kc, vc = _codes((16, 32), n), _codes((n, 32), n + 1), _codes((n, 32), n + 2)
    res = linear_attention_chain_int(qc, kc, vc)
    qr, kr = np.maximum(qc, 0), np.maximum(kc, 0)
    w = qr @ kr.T
    exact = (w @ vc) / w.sum(-1, keepdims=True)
    err = np.abs(res.out / 256 - exact)
    bound = chain_error_bound(np.abs(exact), qr.sum(-1, keepdims=True), res.den, res.shift,
                              res.saturated)
    assert np.all(err <= bound + 1e-12), float((err / bound).max())
    assert np.all(err <= chain_error_bound(np.abs(exact), qr.sum(-1, keepdims=True), res.den,
                                           res.shift))  # the default worst case too
    fixed = np.abs(linear_attention_int(qc, kc, vc) / 256 - exact)
    assert np.all(fixed <= datapath_error_bound(exact))
    print(f"N={n} s={int(res.shift)}: chain max err {err.max():.4f}, fixed {fixed.max():.4f}, "
          f"max err/bound {(err / bound).max():.2f}")
    assert err.max() < 0.3 and (err / bound).max() > 0.1


def test_float_wrapper() -> None:
    """End to end vs float linear attention (N(0,1), 2 heads, 512 tokens, d 32): measured max
    |err| 0.0763 s_v (the int32 linear_attention_fixed: 0.0762 s_v): the int8 quantization of
    q, k, v dominates, the chain's requantization adds almost nothing end to end."""
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((1, 2, 512, 32)).astype(np.float32) for _ in range(3))
    res = linear_attention_chain_fixed(q, k, v)
    sv = res.v_scale
    fixed = res.dequantize()
    err = np.abs(fixed - linear_attention(q, k, v))
    base = np.abs(linear_attention_fixed(q, k, v).dequantize() - linear_attention(q, k, v))
    print(f"chain max err {err.max() / sv:.4f} s_v, int32 datapath {base.max() / sv:.4f} s_v")
    assert err.max() < 0.2 * sv and err.mean() < 0.05 * sv
    qc, kc, vc = (quantize_int8(t)[0] for t in (q, k, v))
    np.testing.assert_array_equal(res.out_codes, linear_attention_chain_int(qc, kc, vc).out)


def test_bad_inputs() -> None:
    ok = np.zeros((4, 8), dtype=np.int64)
    with pytest.raises(ValueError, match=r"q holds 200, outside int8 range"):
        linear_attention_chain_int(ok + 200, ok, ok)
    with pytest.raises(ValueError, match=r"head_dim of q \(8\) and k \(6\) differ"):
        linear_attention_chain_int(ok, ok[:, :6], ok)
    with pytest.raises(ValueError, match=r"tokens of k \(4\) and v \(3\) differ"):
        linear_attention_chain_int(ok, ok, ok[:3])
    with pytest.raises(ValueError, match=r"den_bits must be in 2\.\.30, got 1"):
        linear_attention_chain_int(ok, ok, ok, den_bits=1)
    with pytest.raises(ValueError, match=r"n_tokens must be an int >= 1, got 0"):
        ks_slice_count(0)
    with pytest.raises(ValueError, match=r"den and q_sum must be >= 0"):
        chain_error_bound(1.0, 1, -1, 2)
