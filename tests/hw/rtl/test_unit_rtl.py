"""GraphUnit: each workload unit's datapath in Amaranth agrees with simulate_graph cycle by
cycle (the reduction registers included), pipelined or not, and emits deterministic Verilog."""

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hw.ir.expand import expand_reciprocals
from hw.ir.graph_sim import as_signed, simulate_graph
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from hw.ir.primitive import PrimitiveGraph
from hw.ir.units import RequantShape, requant_graph
from hw.rtl.emit import to_verilog
from hw.rtl.unit_rtl import GraphUnit
from tests.hw.ir.units.cases import UNITS, random_stimulus


def _run(graph: PrimitiveGraph, rows: list[dict[str, int]]) -> list[dict[str, int]]:
    unit = GraphUnit(graph)
    m = Module()
    m.domains.sync = ClockDomain("sync", reset_less=True)
    m.submodules.unit = unit
    outs = [n.name for n in graph if n.kind == "output"]
    seen = []

    async def bench(ctx):
        for row in rows:
            for name, value in row.items():
                port = getattr(unit, name)
                ctx.set(port, as_signed(value, len(port)) if port.shape().signed else value)
            seen.append({n: ctx.get(getattr(unit, n)) for n in outs})
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("unit", sorted(UNITS))
@pytest.mark.parametrize("pipelined", [False, True])
def test_unit_rtl_agrees_with_graph_semantics(unit, pipelined):
    graph = UNITS[unit]()
    if pipelined:
        graph = expand_reciprocals(graph)
        graph = apply_pipeline(graph, insert_pipeline(graph, 2.0, share_fanout=True))
    rows = random_stimulus(graph, 24, seed=len(unit))
    want = simulate_graph(graph, rows)
    got = _run(graph, rows)
    for t, (w, g) in enumerate(zip(want, got, strict=True)):
        assert g == w, (unit, t)


def test_unit_verilog_is_deterministic():
    texts = [to_verilog(GraphUnit(requant_graph(RequantShape(lanes=2))), "requant")
             for _ in range(2)]
    assert texts[0] == texts[1]
    assert "module requant" in texts[0]


def test_graph_without_outputs_is_rejected():
    g = PrimitiveGraph()
    g.add_node("a", "input", 4)
    with pytest.raises(ValueError, match="no output"):
        GraphUnit(g)
