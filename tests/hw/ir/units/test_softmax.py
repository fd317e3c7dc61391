"""The softmax unit's graph, streamed as the unit streams a row (pass 1: the row max; pass 2:
the weights and their sum), is bit-exact against golden.attention_fixed.attention_weights."""

import numpy as np
import pytest

from golden.attention_fixed import AttentionFixedConfig, attention_weights
from golden.softmax_fixed import SoftmaxFixedConfig
from hw.ir.graph_sim import as_signed, simulate_graph
from hw.ir.units.softmax import SoftmaxShape, softmax_graph


def _run_rows(shape: SoftmaxShape, x: np.ndarray, mask: np.ndarray):
    """Per row: the graph's max, weights and sum, streaming ``lanes`` entries per cycle."""
    graph = softmax_graph(shape)
    lanes, (rows, keys) = shape.lanes, x.shape
    chunks = -(-keys // lanes)
    xp = np.zeros((rows, chunks * lanes), np.int64)
    vp = np.zeros_like(xp, dtype=bool)
    xp[:, :keys], vp[:, :keys] = x, mask

    def cycles(r, rowmax):
        return [{"rowmax": rowmax, "first": int(c == 0),
                 **{f"x{l}": int(xp[r, c * lanes + l]) for l in range(lanes)},
                 **{f"valid{l}": int(vp[r, c * lanes + l]) for l in range(lanes)}}
                for c in range(chunks)]

    results = []
    for r in range(rows):
        pass1 = simulate_graph(graph, cycles(r, 0) + [cycles(r, 0)[0] | {"first": 0}])
        rowmax = as_signed(pass1[-1]["max"], 32)
        rows2 = cycles(r, rowmax)
        pass2 = simulate_graph(graph, rows2 + [rows2[0] | {"first": 0}])
        w = np.array([pass2[c][f"w{l}"] for c in range(chunks) for l in range(lanes)])
        results.append((rowmax, w[:keys], pass2[-1]["sum"]))
    return results


def _check(shape: SoftmaxShape, x: np.ndarray, mask: np.ndarray):
    cfg = AttentionFixedConfig(softmax=shape.config, weight_bits=shape.weight_bits)
    want = attention_weights(x, mask, cfg)
    for r, (rowmax, w, total) in enumerate(_run_rows(shape, x, mask)):
        assert rowmax == x[r][mask[r]].max(), r
        assert w.tolist() == want[r].tolist(), r
        assert total == want[r].sum(), r


@pytest.mark.parametrize("config", [SoftmaxFixedConfig(),
                                    SoftmaxFixedConfig(table_bits=3, interpolate=False),
                                    SoftmaxFixedConfig(in_frac_bits=4, t_frac_bits=12,
                                                       table_bits=6, exp_bits=10)])
def test_random_rows_bit_exact(config):
    rng = np.random.default_rng(config.table_bits)
    rows, keys = 6, 21
    x = rng.integers(-(1 << 14), 1 << 14, (rows, keys)) >> rng.integers(0, 12, (rows, 1))
    mask = rng.random((rows, keys)) < 0.8
    mask[:, 0] = True
    _check(SoftmaxShape(lanes=4, config=config), x, mask)


def test_extreme_rows_bit_exact():
    """All-negative logits, the int32 ends, one visible key, ties, a masked huge value."""
    lo, hi = -(1 << 31), (1 << 31) - 1
    x = np.array([[-5000, -7000, -6000, -5000, -1 << 20, -9, -9, -9],
                  [lo, hi, 0, 0, 0, 0, 0, 0],
                  [3, 3, 3, 3, 3, 3, 3, 3],
                  [hi, 12, -12, 0, 1, 2, 3, 4]])
    mask = np.ones_like(x, dtype=bool)
    mask[1, 2:] = False
    mask[3, 0] = False          # the largest value is masked out
    mask[2, 1:] = False         # a single visible key
    mask[2, 5] = True
    _check(SoftmaxShape(lanes=3), x, mask)
