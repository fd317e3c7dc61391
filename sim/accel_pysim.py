"""Run a generated accelerator in Amaranth's simulator with a Python DRAM model: the slow,
dependency-free engine the unit tests use on small architectures.

The DRAM model and the cycle protocol are those of the fast harness (:mod:`sim.accel_fast`):
``mem_req_ready`` held high; a write takes effect at the end of its cycle; a read made in
cycle c is answered in cycle c + L; commands are offered one per cycle from cycle 0; the run
lasts until the first cycle, after the last command was taken, in which ``busy`` is low.

Layer: sim.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.sim import Simulator

from hw.front.arch import ArchSpec
from hw.rtl.accel import Accelerator

from .errors import SimulationError

__all__ = ["PysimRun", "run_accel_pysim"]


@dataclass(frozen=True)
class PysimRun:
    cycles: int
    dram: bytes


def run_accel_pysim(arch: ArchSpec, words: Sequence[int], dram: bytes, *,
                    max_cycles: int = 100_000) -> PysimRun:
    """Run the instruction ``words`` on ``arch``'s accelerator over a DRAM holding ``dram``."""
    dut = Accelerator(arch)
    latency, width = dut.params.latency, dut.params.bus_bytes
    memory = bytearray(dram)
    result: dict[str, int] = {}

    async def bench(ctx) -> None:
        pending: deque[tuple[int, bytes]] = deque()
        n = 0
        for cycle in range(max_cycles):
            ctx.set(dut.cmd_valid, n < len(words))
            ctx.set(dut.cmd_data, words[n] if n < len(words) else 0)
            if pending and pending[0][0] == cycle:
                ctx.set(dut.mem_resp_valid, 1)
                ctx.set(dut.mem_resp_data, int.from_bytes(pending.popleft()[1], "little"))
            else:
                ctx.set(dut.mem_resp_valid, 0)
            ctx.set(dut.mem_req_ready, 1)
            if n == len(words) and not ctx.get(dut.busy):
                result["cycles"] = cycle
                return
            if ctx.get(dut.mem_req_valid):
                addr, size = ctx.get(dut.mem_req_addr), ctx.get(dut.mem_req_len)
                if not 1 <= size <= width or addr + size > len(memory):
                    raise SimulationError(f"cycle {cycle}: DRAM request of {size} bytes at "
                                          f"{addr:#x} outside the {len(memory)}-byte DRAM")
                if ctx.get(dut.mem_req_write):
                    data = ctx.get(dut.mem_req_wdata).to_bytes(width, "little")
                    memory[addr:addr + size] = data[:size]
                else:
                    pending.append((cycle + latency, bytes(memory[addr:addr + size])))
            if n < len(words) and ctx.get(dut.cmd_ready):
                n += 1
            await ctx.tick()
        raise SimulationError(f"the run did not finish within max_cycles={max_cycles}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return PysimRun(result["cycles"], bytes(memory))
