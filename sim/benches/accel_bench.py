"""cocotb bench for a whole accelerator (ports: :mod:`hw.rtl.accel_ports`, plus clk and rst).

The DRAM model and the cycle protocol are those of :mod:`sim.accel_fast` (its docstring);
the model is :class:`sim.accel_cocotb.DramModel`. A counted cycle runs from one falling edge
of ``clk`` to the next: the bench sets the cycle's inputs at the falling edge, samples the
outputs once they settle (``ReadOnly``), serves the memory request, and the rising edge in
the middle ends the cycle.

Input JSON (``$LEGO_BENCH_IN``): ``words`` (instruction words, ints or decimal strings),
``dram`` (the DRAM image, hex), ``latency``, ``max_cycles``. Output JSON
(``$LEGO_BENCH_OUT``): ``cycles``, ``dram`` (the final image, hex), ``run_wall_s``; or, when
the run fails (more than ``max_cycles`` cycles, a request outside the DRAM model, past
``$LEGO_BENCH_TIMEOUT_S`` seconds when that is set), ``error`` (the message) alone, the
cocotb test itself passing.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.rtl import accel_ports as ap
from sim.dram_model import DramModel
from sim.errors import SimulationError

PERIOD_NS = 10
_RESET_EDGES = 2


@cocotb.test()
async def run_accel(dut):
    with open(os.environ["LEGO_BENCH_IN"]) as f:
        cfg = json.load(f)
    words = [int(w) for w in cfg["words"]]
    latency, max_cycles = int(cfg["latency"]), int(cfg["max_cycles"])
    limit_s = float(os.environ.get("LEGO_BENCH_TIMEOUT_S", "inf"))
    sig = {name: getattr(dut, name) for name in (
        ap.CMD_VALID, ap.CMD_READY, ap.CMD_DATA, ap.BUSY, ap.MEM_REQ_VALID,
        ap.MEM_REQ_WRITE, ap.MEM_REQ_ADDR, ap.MEM_REQ_LEN, ap.MEM_REQ_WDATA, ap.MEM_RESP_VALID,
        ap.MEM_RESP_DATA)}
    dram = DramModel(bytes.fromhex(cfg["dram"]), len(sig[ap.MEM_REQ_WDATA]) // 8, latency)

    dut.rst.value = 1
    sig[ap.CMD_VALID].value = 0
    sig[ap.CMD_DATA].value = 0
    sig[ap.MEM_RESP_VALID].value = 0
    sig[ap.MEM_RESP_DATA].value = 0
    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)
    for _ in range(_RESET_EDGES):
        await RisingEdge(dut.clk)

    wall = time.perf_counter()
    try:
        cycles = await _drive(dut, sig, words, dram, max_cycles, limit_s)
    except SimulationError as exc:              # the run's own failure, not the bench's
        result = {"error": str(exc)}
    else:
        result = {"cycles": cycles, "dram": dram.mem.hex(),
                  "run_wall_s": time.perf_counter() - wall}
    with open(os.environ["LEGO_BENCH_OUT"], "w") as f:
        json.dump(result, f)


async def _drive(dut, sig: dict, words: list[int], dram: DramModel, max_cycles: int,
                 limit_s: float) -> int:
    """Run the counted cycles (from a falling edge of ``clk`` after reset); return ``cycles``.

    Raises :class:`SimulationError` past ``max_cycles`` or ``limit_s`` seconds, and (from
    the DRAM model) for a request outside it.
    """
    wall = time.perf_counter()
    consumed, answering, cycle = 0, False, 0
    while True:
        await FallingEdge(dut.clk)              # cycle `cycle` begins: its inputs
        if cycle == 0:
            dut.rst.value = 0
        if consumed < len(words):
            sig[ap.CMD_VALID].value = 1
            sig[ap.CMD_DATA].value = words[consumed]
        else:
            sig[ap.CMD_VALID].value = 0
            sig[ap.CMD_DATA].value = 0
        data = dram.response(cycle)
        if data is not None:
            sig[ap.MEM_RESP_VALID].value = 1
            sig[ap.MEM_RESP_DATA].value = data
            answering = True
        elif answering:
            sig[ap.MEM_RESP_VALID].value = 0
            sig[ap.MEM_RESP_DATA].value = 0
            answering = False
        await ReadOnly()
        finished = consumed == len(words) and not int(sig[ap.BUSY].value)
        if not finished and cycle == max_cycles:
            raise SimulationError(f"busy still high (or words left) after "
                                  f"max_cycles={max_cycles} cycles")
        if int(sig[ap.MEM_REQ_VALID].value):    # every request is taken
            dram.request(cycle, bool(int(sig[ap.MEM_REQ_WRITE].value)),
                         sig[ap.MEM_REQ_ADDR].value.to_unsigned(),
                         sig[ap.MEM_REQ_LEN].value.to_unsigned(),
                         sig[ap.MEM_REQ_WDATA].value.to_unsigned())
        if finished:
            return cycle
        if consumed < len(words) and int(sig[ap.CMD_READY].value):
            consumed += 1
        if cycle % 1024 == 0 and time.perf_counter() - wall > limit_s:
            raise SimulationError(f"cocotb run exceeded {limit_s} s")
        cycle += 1
        await RisingEdge(dut.clk)               # ends the cycle
