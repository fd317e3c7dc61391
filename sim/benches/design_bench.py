"""cocotb bench for any generated array (the host protocol of :mod:`hw.generate`).

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

PERIOD_NS = 10


@cocotb.test()
async def run_design(dut):
    with open(os.environ["LEGO_BENCH_IN"]) as f:
        cfg = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.host_we.value = 0
    dut.start.value = 0
    await ClockCycles(dut.clk, 1)
    dut.host_we.value = 1
    for addr, word in cfg["writes"]:
        dut.host_addr.value = addr
        dut.host_wdata.value = word
        await RisingEdge(dut.clk)
    dut.host_we.value = 0

    if cfg.get("dataflow", 0):          # a fused design: pick the dataflow to run
        dut.mode.value = cfg["dataflow"]
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    t_start = get_sim_time(unit="ns")
    wall = time.perf_counter()
    if cfg.get("mode", "bulk") == "bulk":
        timeout = Timer(cfg["max_cycles"] * PERIOD_NS, unit="ns")
        fired = await First(RisingEdge(dut.done), timeout)
        assert fired is not timeout, f"done did not rise within {cfg['max_cycles']} cycles"
    else:
        for _ in range(cfg["max_cycles"]):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.done.value:
                break
        assert dut.done.value, f"done did not rise within {cfg['max_cycles']} cycles"
    run_wall = time.perf_counter() - wall
    cycles = round((get_sim_time(unit="ns") - t_start) / PERIOD_NS)

    await Timer(1, unit="ns")
    values = []
    for addr in cfg["reads"]:
        dut.host_addr.value = addr
        await RisingEdge(dut.clk)
        await ReadOnly()
        values.append(str(dut.host_rdata.value.to_unsigned()))
        await Timer(1, unit="ns")
    with open(os.environ["LEGO_BENCH_OUT"], "w") as f:
        json.dump({"values": values, "cycles": cycles, "run_wall_s": run_wall}, f)
