"""The activation quantizer's graph, streamed as the unit streams a group (pass 1: absmax;
pass 2: scale and codes), is bit-exact against golden.svdquant_ops.quantize_int4 and, in its
wide mode (a row a group), golden.svdquant_fixed.quantize_symmetric; its float32 division is
numpy's float32 division (correctly rounded, subnormals, ties, overflow)."""

import numpy as np
import pytest

from golden.svdquant_ops import quantize_int4
from hw.ir.graph_sim import as_signed, simulate_graph
from hw.ir.units.build import GraphBuilder
from hw.ir.units.float32 import float32_divide
from hw.ir.units.quantizer import QuantizerShape, quantizer_graph

TINY = np.float32(2.0**-149)            # the least subnormal
F32 = np.float32


# ------------------------------------------------------------------------------ division
def _divide(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    b = GraphBuilder()
    b.output("y", float32_divide(b, b.input("a", 32), b.input("d", 32)))
    rows = [{"a": int(x), "d": int(y)} for x, y in zip(a.view(np.uint32), d.view(np.uint32),
                                                      strict=True)]
    return np.array([r["y"] for r in simulate_graph(b.graph, rows)], np.uint32)


def _random_floats(rng, n: int, lo: int, hi: int) -> np.ndarray:
    """Random signs, exponent fields in lo..hi (0: subnormal), random fractions."""
    bits = (rng.integers(0, 2, n, dtype=np.uint32) << 31) | \
        (rng.integers(lo, hi + 1, n, dtype=np.uint32) << 23) | \
        rng.integers(0, 1 << 23, n, dtype=np.uint32)
    return bits.view(np.float32)


def _division_cases(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 1500
    nums = [_random_floats(rng, n, 0, 254),              # anything: overflow, underflow
            _random_floats(rng, n, 100, 154),            # normal quotients
            _random_floats(rng, n, 0, 2),                # subnormal / tiny dividends
            _random_floats(rng, n, 0, 30)]
    dens = [_random_floats(rng, n, 0, 254), _random_floats(rng, n, 100, 154),
            _random_floats(rng, n, 100, 154), _random_floats(rng, n, 0, 3)]
    # ties: a power-of-two divisor pushing the quotient into the subnormals (exact halves)
    # (odd m) 2**(j - 149) / 2**(j + 1) is m / 2 subnormal LSBs: exactly half-way; a few
    # larger divisors give quarters and less (round by the sticky bit)
    j = rng.integers(0, 40, n)
    ties = (rng.integers(0, 1 << 23, n) * 2 + 1).astype(np.float32) * TINY * \
        np.exp2(j).astype(np.float32)
    pow2 = np.exp2(j + 1 + (rng.random(n) < 0.2) * rng.integers(1, 20, n)).astype(np.float32)
    edge = np.array([[1, 3], [1, 7], [2, 3], [-1, 3], [0, 5], [-0.0, 5], [0, -5],
                     [3.4028235e38, TINY], [3.4028235e38, 0.5], [TINY, 3.4028235e38],
                     [TINY, 2], [3 * TINY, 2], [5 * TINY, -2], [TINY, 1.5], [TINY, 3],
                     [1.1754942e-38, 1.0000001], [1.1754944e-38, 1], [1.1754944e-38, 2],
                     [16777215, 16777216], [1.5, 1.0000001], [7, 7], [-8, 1], [0.1, 0.3],
                     [1e-45, 1e-45], [1e38, 1e-38], [1e-38, 1e38]], np.float32)
    a = np.concatenate([*nums, ties, edge[:, 0]])
    d = np.concatenate([*dens, pow2, edge[:, 1]])
    keep = d != 0
    return a[keep], d[keep]


@pytest.mark.parametrize("seed", range(2))
def test_division_matches_numpy(seed):
    a, d = _division_cases(seed)
    with np.errstate(all="ignore"):
        want = (a / d).view(np.uint32)
    got = _divide(a, d)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(float(a[i]), float(d[i]), hex(got[i]), hex(want[i]))
                           for i in bad[:4]]
    mag = got & 0x7FFFFFFF
    assert (mag == 0x7F800000).any() and (got == 0).any() and (got == 0x80000000).any()
    assert ((mag < 0x800000) & (mag > 0)).sum() > 1000      # many subnormal quotients
    exact = a.astype(np.float64) / d.astype(np.float64)     # exact for the power-of-two cases
    assert (np.abs(exact / 2.0**-149) % 1 == 0.5).sum() > 1000    # ties at the subnormal LSB


def test_division_by_zero_is_an_infinity():
    a = np.array([1, -1, 0, -0.0, TINY, 1], np.float32)
    d = np.array([0, 0, 0, 0, -0.0, -0.0], np.float32)
    assert _divide(a, d).tolist() == [0x7F800000, 0xFF800000, 0x7F800000, 0xFF800000,
                                      0xFF800000, 0xFF800000]


# ------------------------------------------------------------------------------ the unit
def _quantize(shape: QuantizerShape, x: np.ndarray, signed: bool, wide: bool = False):
    """Stream every group of every row twice (``wide``: a group is the whole row); the codes
    and scales of pass 2."""
    lanes = shape.lanes
    bits = np.asarray(x, np.float32).view(np.uint32)
    rows_n, k = bits.shape
    group = k if wide else shape.group
    cycles = group // lanes
    rows = []
    for r in range(rows_n):
        for g in range(k // group):
            for p in (1, 2):
                for c in range(cycles):
                    at = g * group + c * lanes
                    rows.append({"first": int(p == 1 and c == 0), "signed": int(signed),
                                 "wide": int(wide),
                                 **{f"x{l}": int(bits[r, at + l]) for l in range(lanes)}})
    out = iter(simulate_graph(quantizer_graph(shape), rows))
    codes = np.zeros(bits.shape, np.int64)
    scales = np.zeros((rows_n, k // group), np.uint32)
    for r in range(rows_n):
        for g in range(k // group):
            for _ in range(cycles):                  # pass 1
                next(out)
            for c in range(cycles):
                o = next(out)
                scales[r, g] = o["scale"]
                assert o["absmax"] == int(np.abs(x[r, g * group:(g + 1) * group]).max()
                                          .view(np.uint32))
                for l in range(lanes):
                    codes[r, g * group + c * lanes + l] = as_signed(o[f"q{l}"],
                                                                    shape.code_bits)
    return codes, scales.view(np.float32)


def _check(shape: QuantizerShape, x: np.ndarray, signed: bool) -> np.ndarray:
    want_q, want_s = quantize_int4(x, shape.group, signed)
    got_q, got_s = _quantize(shape, x, signed)
    assert got_s.view(np.uint32).tolist() == want_s.view(np.uint32).tolist()
    bad = np.argwhere(got_q != want_q)
    assert bad.size == 0, [(tuple(i), float(x[tuple(i)]), got_q[tuple(i)], want_q[tuple(i)])
                           for i in bad[:4]]
    return want_q


def _rows(rng, rows: int, k: int, lo: int, hi: int) -> np.ndarray:
    """Normal-ish rows at a random scale per row (exponents lo..hi), some exact zeros."""
    x = rng.standard_normal((rows, k)) * np.exp2(rng.integers(lo, hi, (rows, 1)))
    x[rng.random((rows, k)) < 0.05] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("group,lanes", [(64, 16), (8, 4)])
def test_random_rows_bit_exact(signed, group, lanes):
    rng = np.random.default_rng(group + signed)
    x = _rows(rng, 6, 2 * group, -30, 30)
    if not signed:
        x = np.abs(x)
    _check(QuantizerShape(lanes=lanes, group=group), x, signed)


@pytest.mark.parametrize("signed", [True, False])
def test_extreme_groups_bit_exact(signed):
    """All-zero groups (scale 1.0), -0.0, huge and tiny maxima, subnormal groups (codes -8),
    absmax underflowing to a zero scale, exact rint ties, lone outliers."""
    big, tiny = F32(3.4028235e38), TINY
    groups = [np.zeros(8), np.full(8, -0.0), [big, -big, 1, -1, 3e38, 1e-38, 0, 2e37],
              [tiny, -tiny, tiny, 0, 0, 0, 0, 0],
              [-10 * tiny, 10 * tiny, 9 * tiny, -4 * tiny, 3 * tiny, 0, -tiny, 2 * tiny],
              [-11 * tiny, -10 * tiny, 7 * tiny, -5 * tiny, 100 * tiny, -99 * tiny, 1, 0],
              np.array([7, -6.5, -5.5, -4.5, 3.5, 2.5, -1.5, 0.5]) * 2.0**-20,
              np.array([15, 14.5, 13.5, 12.5, 9.5, 2.5, 1.5, 0.5]) * 2.0**40,
              [1e30, 1e-30, -1e-30, 7e29, -6.9e29, 0, 1, 1e29],
              [1.1754944e-38, -1.1754942e-38, 2.3e-39, 0, 0, 0, 0, 5e-39]]
    x = np.array(groups, np.float64).astype(np.float32).reshape(2, -1)
    if not signed:
        x = np.abs(x)
    q = _check(QuantizerShape(lanes=4, group=8), x, signed)
    if signed:
        assert (q == -8).any()
    assert (q == (7 if signed else 15)).any()


def test_tiny_and_huge_rows_bit_exact():
    rng = np.random.default_rng(7)
    shape = QuantizerShape(lanes=16, group=64)
    for lo, hi in ((-150, -125), (100, 127)):
        _check(shape, _rows(rng, 3, 128, lo, hi), True)


def test_negative_input_unsigned_gets_code_zero():
    """Out of contract (golden raises): negative x with signed = 0 is clamped to 0; the scale
    still comes from |x|."""
    rng = np.random.default_rng(3)
    x = _rows(rng, 2, 16, -3, 3)
    got_q, got_s = _quantize(QuantizerShape(lanes=4, group=8), x, False)
    _, want_s = quantize_int4(np.abs(x), 8, False)
    assert got_s.tolist() == want_s.tolist()
    want_q = np.clip(np.rint(x.reshape(2, 2, 8) / want_s[..., None]), 0, 15).reshape(2, 16)
    assert got_q.tolist() == want_q.astype(np.int64).tolist()
    assert (got_q[x < 0] == 0).all()


@pytest.mark.parametrize("kwargs,field", [({"lanes": 0}, "lanes"), ({"group": 8193}, "group"),
                                          ({"lanes": 16, "group": 24}, "group"),
                                          ({"lanes": True}, "lanes"),
                                          ({"code_bits": 3}, "code_bits"),
                                          ({"code_bits": 17}, "code_bits")])
def test_shape_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        QuantizerShape(**kwargs)


# ------------------------------------------------------------------- wide (per-row) codes
def _check_wide(shape: QuantizerShape, x: np.ndarray) -> np.ndarray:
    """The wide mode (one group a row, code_bits-bit symmetric codes) against
    golden.svdquant_fixed.quantize_symmetric."""
    from golden.svdquant_fixed import quantize_symmetric

    want_q, want_s = quantize_symmetric(x, shape.code_bits)
    for signed in (True, False):                    # wide overrides signed
        got_q, got_s = _quantize(shape, x, signed, wide=True)
        assert got_s.view(np.uint32).tolist() == want_s.view(np.uint32)[:, None].tolist()
        bad = np.argwhere(got_q != want_q)
        assert bad.size == 0, [(tuple(i), float(x[tuple(i)]), got_q[tuple(i)],
                                want_q[tuple(i)]) for i in bad[:4]]
    return want_q


@pytest.mark.parametrize("code_bits,lanes,k", [(8, 4, 16), (16, 4, 8), (8, 16, 32)])
def test_wide_random_rows_bit_exact(code_bits, lanes, k):
    rng = np.random.default_rng(code_bits + lanes)
    x = _rows(rng, 6, k, -40, 40)
    _check_wide(QuantizerShape(lanes=lanes, group=lanes, code_bits=code_bits), x)


def test_wide_extreme_rows_bit_exact():
    """All-zero and -0.0 rows (scale 1.0), the largest magnitudes, subnormal scales (codes
    -128), an absmax whose scale underflows (scale 1.0, codes 0), exact rint ties, a lone
    outlier."""
    big, tiny = F32(3.4028235e38), TINY
    half = np.array([127, -126.5, -5.5, -4.5, 3.5, 2.5, -1.5, 0.5]) * 2.0**-20
    rows = [np.zeros(8), np.full(8, -0.0), [big, -big, 1, -1, 3e38, 1e-38, 0, 2e37],
            [tiny, -tiny, tiny, 0, 0, 0, 0, 0],
            [-190 * tiny, 190 * tiny, 9 * tiny, -4 * tiny, 3 * tiny, 0, -tiny, 2 * tiny],
            [-300 * tiny, 200 * tiny, 127 * tiny, -5 * tiny, 100 * tiny, -99 * tiny, 0, 0],
            half, [1e30, 1e-30, -1e-30, 7e29, -6.9e29, 0, 1, 1e29]]
    x = np.array(rows, np.float64).astype(np.float32)
    q = _check_wide(QuantizerShape(lanes=4, group=4), x)
    assert (q == -128).any() and (q == 127).any() and (q[:2] == 0).all()
