"""The normalizer unit's graph is bit-exact against golden.linear_attention_fixed.normalize."""

import numpy as np
import pytest

from golden.linear_attention_fixed import normalize
from hw.ir.graph_sim import as_signed, simulate_graph
from hw.ir.units.normalizer import (
    NormalizerShape,
    normalizer_graph,
    reciprocal_graph,
    scale_graph,
)


def _rows(rng, lanes, count, num_bits, den_bits):
    nums = rng.integers(-(1 << (num_bits - 1)), 1 << (num_bits - 1), (count, lanes))
    nums >>= rng.integers(0, num_bits - 1, (count, 1))
    dens = rng.integers(0, 1 << den_bits, count) >> rng.integers(0, den_bits, count)
    dens[:4] = [0, 1, (1 << den_bits) - 1, 1 << 15]
    nums[:4, 0] = [0, -(1 << (num_bits - 1)), (1 << (num_bits - 1)) - 1, 1 << 20]
    # attention-like rows: |num| <= 128 den (the range the output is meant for)
    dens[4:12] %= 1 << (num_bits - 8)
    nums[4:12] = rng.integers(-128, 128, (8, lanes)) * dens[4:12, None]
    return nums, dens


@pytest.mark.parametrize("params", [dict(), dict(den_bits=8, recip_frac_bits=12, out_frac_bits=4),
                                    dict(den_bits=20, recip_frac_bits=30, out_frac_bits=12)])
def test_normalizer_bit_exact(params):
    shape = NormalizerShape(lanes=3, **params)
    rng = np.random.default_rng(len(params))
    nums, dens = _rows(rng, 3, 300, shape.num_bits, shape.den_in_bits)
    rows = [{"den": int(d), **{f"num{l}": int(n[l]) for l in range(3)}}
            for n, d in zip(nums, dens, strict=True)]
    out = simulate_graph(normalizer_graph(shape), rows)
    want = normalize(nums, dens[:, None], shape.out_frac_bits, shape.den_bits,
                     shape.recip_frac_bits)
    got = np.array([[as_signed(r[f"out{l}"], shape.out_bits) for l in range(3)] for r in out])
    bad = np.argwhere(got != want)
    assert not bad.size, f"row {bad[0][0]}: num {nums[bad[0][0]]}, den {dens[bad[0][0]]}: " \
        f"got {got[bad[0][0]]}, want {want[bad[0][0]]}"


def test_reciprocal_then_scale_equals_the_one_pass_normalizer():
    """The unit's split (the row's reciprocal computed ahead, then the lanes) composes to the
    same outputs as the one-pass graph, hence to golden."""
    shape = NormalizerShape(lanes=2)
    nums, dens = _rows(np.random.default_rng(9), 2, 200, shape.num_bits, shape.den_in_bits)
    rows = [{"den": int(d), "num0": int(n[0]), "num1": int(n[1])}
            for n, d in zip(nums, dens, strict=True)]
    recips = simulate_graph(reciprocal_graph(shape), rows)
    scaled = simulate_graph(scale_graph(shape), [
        {"shift": r["shift"], "rcp": r["rcp"], "num0": row["num0"], "num1": row["num1"]}
        for r, row in zip(recips, rows, strict=True)])
    whole = simulate_graph(normalizer_graph(shape), rows)
    assert [{k: w[k] for k in ("out0", "out1")} for w in whole] == scaled
