"""Run a generated design in Amaranth's own simulator (no build step; slow per cycle).

For quick checks of small designs, e.g. property tests over many random dataflows where a
Verilator build per design would cost tens of seconds. Same host protocol and cycle count
definition as :mod:`sim.benches.design_bench`.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.sim import Simulator

from .errors import SimulationError

__all__ = ["run_pysim"]


def run_pysim(top, writes: Sequence[tuple[int, int]], reads: Sequence[int],
              max_cycles: int, mode: int = 0) -> tuple[list[int], int]:
    """(raw words read back, run cycles) for ``top`` (a :class:`hw.generate.GeneratedArray`)."""
    result: dict = {}

    async def bench(ctx):
        ctx.set(top.host_we, 1)
        for addr, word in writes:
            ctx.set(top.host_addr, addr)
            ctx.set(top.host_wdata, word)
            await ctx.tick()
        ctx.set(top.host_we, 0)
        if hasattr(top, "mode"):
            ctx.set(top.mode, mode)
        ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
        cycles = 0
        while not ctx.get(top.done):
            await ctx.tick()
            cycles += 1
            if cycles > max_cycles:
                raise SimulationError(f"done did not rise within {max_cycles} cycles")
        values = []
        for addr in reads:
            ctx.set(top.host_addr, addr)
            await ctx.tick()
            values.append(ctx.get(top.host_rdata))
        result["values"], result["cycles"] = values, cycles

    sim = Simulator(top)
    sim.add_clock(1e-8, domain=top.domain)
    sim.add_testbench(bench)
    sim.run()
    return result["values"], result["cycles"]
