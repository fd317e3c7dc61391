"""Run a primitive graph's Amaranth form (``emit_graph``) under Amaranth's simulator."""

from amaranth.hdl import ClockDomain, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.ir.graph_sim import as_signed
from hw.ir.primitive import PrimitiveGraph
from hw.rtl.graph_rtl import emit_graph


def run_graph_rtl(graph: PrimitiveGraph, stimulus: list[dict[str, int]]) -> list[dict[str, int]]:
    """Per cycle, every output's value (an unsigned pattern) after the inputs are set to the
    row's values (either encoding of their width), then a clock edge."""
    m = Module()
    m.domains.sync = ClockDomain("sync", reset_less=True)
    nodes = {n: node for n, node in graph.nodes.items() if node.kind == "input"}
    drive = {n: Signal(signed(node.width) if node.signed else unsigned(node.width), name=n)
             for n, node in nodes.items()}
    outs = emit_graph(m, graph, drive)
    probes = {}
    for name, value in outs.items():
        probes[name] = Signal(len(value), name=f"probe_{name}")
        m.d.comb += probes[name].eq(value)
    seen: list[dict[str, int]] = []

    async def bench(ctx):
        for row in stimulus:
            for name, sig in drive.items():
                width = nodes[name].width
                ctx.set(sig, as_signed(row[name], width) if nodes[name].signed
                        else row[name] & ((1 << width) - 1))
            seen.append({name: ctx.get(p) for name, p in probes.items()})
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen
