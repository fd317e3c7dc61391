"""float32_graph and round_to_even against numpy's float casts and exact integer rounding."""

import numpy as np
import pytest

from hw.ir.graph_sim import simulate_graph
from hw.ir.units.build import GraphBuilder
from hw.ir.units.float32 import float32_graph, round_to_even

ACC_BITS, LSB_BITS = 48, 12


def _float_graph():
    b = GraphBuilder()
    acc = b.input("acc", ACC_BITS, signed=True)
    lsb = b.input("lsb", LSB_BITS, signed=True)
    b.output("y", float32_graph(b, acc, lsb))
    return b.graph


def _expected(acc: int, lsb: int) -> int:
    with np.errstate(over="ignore"):
        return int(np.ldexp(np.float64(acc), lsb).astype(np.float32).view(np.uint32))


def _cases(seed: int, count: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    lim = 1 << (ACC_BITS - 1)
    cases = [(0, 0), (0, -2000), (1, -149), (1, -150), (3, -151), (1, 127), (1, 128),
             (-1, -149), (lim - 1, 80), (-lim, 80), (-lim, -200), ((1 << 24) - 1, 0),
             ((1 << 25) - 1, -10), ((1 << 24) + 1, -1), (3 << 22, -170), ((1 << 23) + 1, -149),
             (0x7FFFFF, -149), (0xFFFFFF, -150), (1, -2048), (lim - 1, -2047 + 48)]
    for _ in range(count):
        bits = int(rng.integers(1, ACC_BITS))
        acc = int(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1)))
        cases.append((acc, int(rng.integers(-260, 150))))
    for _ in range(count // 4):                 # ties: exactly half an ulp below the cut
        shift = int(rng.integers(1, 20))
        q = int(rng.integers(1 << 23, 1 << 24))
        acc = (q << shift) | (1 << (shift - 1))
        cases.append((acc if rng.integers(2) else -acc, int(rng.integers(-170, 80))))
    return cases


def test_float32_encoding_matches_numpy_cast():
    cases = _cases(0, 2000)
    rows = [{"acc": a, "lsb": e} for a, e in cases]
    got = simulate_graph(_float_graph(), rows)
    bad = [(a, e, r["y"], _expected(a, e)) for (a, e), r in zip(cases, got, strict=True)
           if r["y"] != _expected(a, e)]
    assert not bad, f"{len(bad)} mismatches, first (acc, lsb, got, want): {bad[:3]}"


@pytest.mark.parametrize("width", [3, 5])
def test_round_to_even_exhaustive(width):
    b = GraphBuilder()
    x = b.input("x", width)
    s = b.input("s", 4)
    b.output("q", round_to_even(b, x, s, width + 1))
    rows = [{"x": xv, "s": sv} for xv in range(1 << width) for sv in range(width + 2)]
    got = simulate_graph(b.graph, rows)
    for row, out in zip(rows, got, strict=True):
        xv, sv = row["x"], row["s"]
        assert out["q"] == int(np.rint(xv / 2.0**sv)), row
