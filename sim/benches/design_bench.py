"""cocotb bench for any generated array (the host protocol, ports named in :mod:`hw.rtl.ports`).

Input JSON: ``writes`` ([addr, word] pairs, one per clock), ``reads`` (addresses),
``max_cycles``, ``mode`` ("bulk": one wait for ``done``; "per_cycle": Python wakes on every
clock edge of the run and samples ``done``, as a naive bench would).
Output JSON: ``values`` (raw words), ``cycles`` (from the edge that samples ``start`` to the
edge that raises ``done``), ``run_wall_s``.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.rtl import ports

PERIOD_NS = 10


@cocotb.test()
async def run_design(dut):
    with open(os.environ["LEGO_BENCH_IN"]) as f:
        cfg = json.load(f)
    # the ports, by their names in hw.rtl.ports
    clk, we, addr, wdata, rdata, start, done = (getattr(dut, name) for name in (
        ports.CLOCK, ports.HOST_WE, ports.HOST_ADDR, ports.HOST_WDATA, ports.HOST_RDATA,
        ports.START, ports.DONE))
    Clock(clk, PERIOD_NS, unit="ns").start()
    we.value = 0
    start.value = 0
    await ClockCycles(clk, 1)
    we.value = 1
    for a, word in cfg["writes"]:
        addr.value = a
        wdata.value = word
        await RisingEdge(clk)
    we.value = 0

    if cfg.get("dataflow", 0):          # a fused design: pick the dataflow to run
        getattr(dut, ports.MODE).value = cfg["dataflow"]
    start.value = 1
    await RisingEdge(clk)
    start.value = 0
    t_start = get_sim_time(unit="ns")
    wall = time.perf_counter()
    if cfg.get("mode", "bulk") == "bulk":
        timeout = Timer(cfg["max_cycles"] * PERIOD_NS, unit="ns")
        fired = await First(RisingEdge(done), timeout)
        assert fired is not timeout, f"done did not rise within {cfg['max_cycles']} cycles"
    else:
        for _ in range(cfg["max_cycles"]):
            await RisingEdge(clk)
            await ReadOnly()
            if done.value:
                break
        assert done.value, f"done did not rise within {cfg['max_cycles']} cycles"
    run_wall = time.perf_counter() - wall
    cycles = round((get_sim_time(unit="ns") - t_start) / PERIOD_NS)

    await Timer(1, unit="ns")
    values = []
    for a in cfg["reads"]:
        addr.value = a
        await RisingEdge(clk)
        await ReadOnly()
        values.append(str(rdata.value.to_unsigned()))
        await Timer(1, unit="ns")
    with open(os.environ["LEGO_BENCH_OUT"], "w") as f:
        json.dump({"values": values, "cycles": cycles, "run_wall_s": run_wall}, f)
