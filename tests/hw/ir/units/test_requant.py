"""The requantization unit's graph against golden.fixed_point's rounding and saturation."""

import numpy as np
import pytest

from golden.fixed_point import round_shift_right, saturate
from hw.ir.graph_sim import as_signed, simulate_graph
from hw.ir.units.requant import RequantShape, requant_graph


def _rows(xs, mult, shift, first_every, fold=None):
    lanes = xs.shape[1]
    fold = np.ones(xs.shape[0], int) if fold is None else fold
    return [{"mult": mult, "shift": shift, "first": int(t % first_every == 0),
             "fold": int(fold[t]), **{f"x{lane}": int(xs[t, lane]) for lane in range(lanes)}}
            for t in range(xs.shape[0])]


@pytest.mark.parametrize("mult,shift", [(1, 0), (1, 9), (40000, 23), (65535, 49), (3, 63),
                                        (65535, 0), (1, 31)])
def test_requant_lanes_bit_exact(mult, shift):
    rng = np.random.default_rng(shift)
    lanes = 4
    xs = rng.integers(-(1 << 31), 1 << 31, (40, lanes))
    xs[0] = [-(1 << 31), (1 << 31) - 1, 0, -1]
    xs[1, :] = rng.integers(-200, 200, lanes)
    shape = RequantShape(lanes=lanes)
    out = simulate_graph(requant_graph(shape), _rows(xs, mult, shift, 7))
    v = round_shift_right(xs * mult, min(shift, 66)) if shift < 63 else np.zeros_like(xs)
    for t, row in enumerate(out):
        for lane in range(lanes):
            assert as_signed(row[f"op{lane}"], 8) == saturate(v[t, lane], 8)
            assert as_signed(row[f"wide{lane}"], 32) == saturate(v[t, lane], 32)
            if xs[t, lane] >= 0:
                assert row[f"slice{lane}"] == (int(xs[t, lane]) >> shift) & 127


def test_absmax_reduction_and_power_of_two_shift():
    """``absmax`` is the max |x| over the lanes of the cycles since ``first`` (restarted every
    5 cycles); ``pow2`` the shift bringing it into int8 range: max(bitlen - 7, 0)."""
    rng = np.random.default_rng(1)
    lanes, cycles = 3, 30
    xs = rng.integers(-(1 << 20), 1 << 20, (cycles, lanes)) >> rng.integers(0, 20, (cycles, 1))
    xs[12] = [-(1 << 31), 5, 0]
    xs[17] = [1 << 30, 0, 0]                  # not folded: the register keeps its maximum
    fold = np.ones(cycles, int)
    fold[[3, 8, 9, 17]] = 0
    out = simulate_graph(requant_graph(RequantShape(lanes=lanes)), _rows(xs, 1, 0, 5, fold))
    for t in range(1, cycles):
        start = (t - 1) // 5 * 5
        seen = [s for s in range(start, t) if fold[s]]
        want = int(np.abs(xs[seen]).max()) if seen else 0
        assert out[t]["absmax"] == want, t
        assert out[t]["pow2"] == max(want.bit_length() - 7, 0)


def test_wide_outputs_saturate_to_the_accumulator_width():
    """A 16-bit accumulator's requantizer saturates ``wide`` to 16 bits."""
    rng = np.random.default_rng(5)
    xs = rng.integers(-(1 << 31), 1 << 31, (20, 2))
    out = simulate_graph(requant_graph(RequantShape(lanes=2, wide_bits=16)),
                         _rows(xs, 3, 4, 5))
    v = round_shift_right(xs * 3, 4)
    for t, row in enumerate(out):
        for lane in range(2):
            assert as_signed(row[f"wide{lane}"], 16) == saturate(v[t, lane], 16)
