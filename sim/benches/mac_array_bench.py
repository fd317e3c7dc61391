"""cocotb bench for :class:`hw.mac_array.MacArray`: load, run, read back, report cycles.

Input JSON: ``a_words`` / ``b_words`` (packed operand words, one per k), ``k``, ``rows``,
``mode`` ("bulk": one wait for ``done``; "per_cycle": Python awakes on every clock edge of the
run and samples the outputs, as a naive bench would). Output JSON: ``c_rows`` (packed result
rows), ``cycles`` (clock edges from start to done), ``run_wall_s`` (wall time of the run phase).
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 10


@cocotb.test()
async def run_gemm(dut):
    cfg = json.loads(open(os.environ["LEGO_BENCH_IN"]).read())
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    for port in ("a_we", "b_we", "start"):
        getattr(dut, port).value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    # Load: one word of A (a column) and one of B (a row) per clock edge.
    dut.a_we.value = 1
    dut.b_we.value = 1
    for k, (aw, bw) in enumerate(zip(cfg["a_words"], cfg["b_words"], strict=True)):
        dut.a_waddr.value = k
        dut.a_wdata.value = aw
        dut.b_waddr.value = k
        dut.b_wdata.value = bw
        await RisingEdge(dut.clk)
    dut.a_we.value = 0
    dut.b_we.value = 0

    # Run.
    dut.k_len.value = cfg["k"]
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    t_start = get_sim_time(unit="ns")
    wall = time.perf_counter()
    if cfg["mode"] == "bulk":
        await RisingEdge(dut.done)
    else:
        samples = 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()  # values settled after the edge
            samples += int(dut.c_rdata.value.to_unsigned() != 0)
            if dut.done.value:
                break
    run_wall = time.perf_counter() - wall
    cycles = round((get_sim_time(unit="ns") - t_start) / PERIOD_NS)

    # Read back one packed row of C per step.
    await Timer(1, unit="ns")  # leave the read-only phase before writing inputs
    rows = []
    for i in range(cfg["rows"]):
        dut.c_raddr.value = i
        await Timer(1, unit="ns")
        rows.append(str(dut.c_rdata.value.to_unsigned()))
    assert dut.done.value == 1 and dut.busy.value == 0
    out = {"c_rows": rows, "cycles": cycles, "run_wall_s": run_wall}
    with open(os.environ["LEGO_BENCH_OUT"], "w") as f:
        json.dump(out, f)
