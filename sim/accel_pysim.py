"""Run a generated accelerator in Amaranth's simulator with a Python DRAM model: the slow,
dependency-free engine the unit tests use on small architectures.

The DRAM model (:class:`sim.dram_model.DramModel`) and the cycle protocol are those of the
fast harness (:mod:`sim.accel_fast`): commands offered one per cycle from cycle 0; the run
lasts until the first cycle, after the last command was taken, in which ``busy`` is low
(whose memory request is still served).

Layer: sim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.sim import Simulator

from hw.front.arch import ArchSpec
from hw.rtl.accel import Accelerator

from .dram_model import DramModel
from .errors import SimulationError

__all__ = ["PysimRun", "run_accel_pysim"]


@dataclass(frozen=True)
class PysimRun:
    cycles: int
    dram: bytes


def run_accel_pysim(arch: ArchSpec, words: Sequence[int], dram: bytes, *,
                    max_cycles: int = 100_000) -> PysimRun:
    """Run the instruction ``words`` on ``arch``'s accelerator over a DRAM holding ``dram``;
    :class:`SimulationError` for a request outside the DRAM or a run past ``max_cycles``."""
    dut = Accelerator(arch)
    model = DramModel(dram, dut.params.bus_bytes, dut.params.latency)
    result: dict[str, int] = {}

    async def bench(ctx) -> None:
        n = 0
        for cycle in range(max_cycles + 1):
            ctx.set(dut.cmd_valid, n < len(words))
            ctx.set(dut.cmd_data, words[n] if n < len(words) else 0)
            data = model.response(cycle)
            ctx.set(dut.mem_resp_valid, data is not None)
            ctx.set(dut.mem_resp_data, data or 0)
            if ctx.get(dut.mem_req_valid):
                model.request(cycle, bool(ctx.get(dut.mem_req_write)), ctx.get(dut.mem_req_addr),
                              ctx.get(dut.mem_req_len), ctx.get(dut.mem_req_wdata))
            if n == len(words) and not ctx.get(dut.busy):
                result["cycles"] = cycle
                return
            if n < len(words) and ctx.get(dut.cmd_ready):
                n += 1
            await ctx.tick()
        raise SimulationError(f"the run did not finish within max_cycles={max_cycles}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return PysimRun(result["cycles"], bytes(model.mem))
