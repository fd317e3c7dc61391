"""Run a generated design in Amaranth's own simulator (no build step; slow per cycle).

For quick checks of small designs, e.g. property tests over many random dataflows where a
Verilator build per design would cost tens of seconds. Same host protocol and cycle count
definition as :mod:`sim.benches.design_bench`.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hw.rtl.ports import DONE, HOST_ADDR, HOST_RDATA, HOST_WDATA, HOST_WE, MODE, START

from .errors import SimulationError

__all__ = ["run_pysim"]


def run_pysim(top, writes: Sequence[tuple[int, int]], reads: Sequence[int],
              max_cycles: int, mode: int = 0) -> tuple[list[int], int]:
    """(raw words read back, run cycles) for ``top`` (a :class:`hw.rtl.generate.GeneratedArray`,
    or any component with the ports of :mod:`hw.rtl.ports`), run in a reset-less ``sync``
    domain supplied here."""
    result: dict = {}
    members = top.signature.members
    addr, wdata, we, rdata, start, done = (getattr(top, name) for name in (
        HOST_ADDR, HOST_WDATA, HOST_WE, HOST_RDATA, START, DONE))

    async def bench(ctx):
        ctx.set(we, 1)
        for a, word in writes:
            ctx.set(addr, a)
            ctx.set(wdata, word)
            await ctx.tick()
        ctx.set(we, 0)
        if MODE in members:
            ctx.set(getattr(top, MODE), mode)
        ctx.set(start, 1)
        await ctx.tick()
        ctx.set(start, 0)
        cycles = 0
        while not ctx.get(done):
            await ctx.tick()
            cycles += 1
            if cycles > max_cycles:
                raise SimulationError(f"done did not rise within {max_cycles} cycles")
        values = []
        for a in reads:
            ctx.set(addr, a)
            await ctx.tick()
            values.append(ctx.get(rdata))
        result["values"], result["cycles"] = values, cycles

    # the design runs in its parent's sync domain: this parent supplies a reset-less one
    parent = Module()
    parent.domains.sync = domain = ClockDomain("sync", reset_less=True)
    parent.submodules.top = top
    sim = Simulator(parent)
    sim.add_clock(1e-8, domain=domain)
    sim.add_testbench(bench)
    sim.run()
    return result["values"], result["cycles"]
