"""The fast C++ Verilator harness of :mod:`sim.fast` on a small reset-free host-protocol design.

One real build per test session (shared by pytest-xdist workers through the build lock); the
broken-Verilog case fails in Verilator's parser, before any compiling.
"""

from __future__ import annotations

import dataclasses
import os
import random
import stat
from itertools import accumulate
from pathlib import Path

import pytest
from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.rtl.emit import to_verilog
from sim.errors import BuildError, SimulationError
from sim.fast import _main_source, _protocol_ports, build_fast, run_fast, scan_ports

DEPTH = 256
PASSES_ADDR = DEPTH          #: host address of the pass-count register
MASK = (1 << 32) - 1


class PrefixPasses(wiring.Component):
    """Reset-free host-protocol design: a 256 x 32-bit memory and a pass-count register.

    Host addresses ``0..255`` are the memory, ``256`` the pass count ``P``. On start the design
    replaces the memory ``P`` times by its prefix sums (mod 2**32), one word per cycle, reading
    with one cycle of latency: ``run_cycles == P * 256 + 2`` (start edge, P*256 read edges, the
    last write on the edge that raises ``done``; ``P == 0`` gives 2).
    """

    def __init__(self) -> None:
        super().__init__({
            "clk": In(1), "host_addr": In(16), "host_wdata": In(32), "host_we": In(1),
            "host_rdata": Out(32), "start": In(1), "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # A domain defined here is local to the top: its clock is no port unless driven from one.
        m.domains.sync = cd = ClockDomain("sync", reset_less=True)
        m.d.comb += cd.clk.eq(self.clk)
        abits = DEPTH.bit_length() - 1
        m.submodules.mem = mem = Memory(shape=32, depth=DEPTH, init=[])
        wr, rd = mem.write_port(), mem.read_port()

        passes, remaining = Signal(32), Signal(32 + abits)
        i, j, valid, acc = Signal(abits), Signal(abits), Signal(), Signal(32)
        prev_reg, total = Signal(), Signal(32 + abits)
        issue = remaining != 0
        acc_next = Mux(j == 0, rd.data, acc + rd.data)
        is_reg = self.host_addr == PASSES_ADDR
        m.d.comb += [total.eq(Cat(Const(0, abits), passes)),      # passes * DEPTH
                     self.host_rdata.eq(Mux(prev_reg, passes, rd.data))]
        m.d.sync += prev_reg.eq(is_reg)
        with m.If(self.busy):
            m.d.comb += [rd.addr.eq(i), wr.addr.eq(j), wr.data.eq(acc_next), wr.en.eq(valid)]
            m.d.sync += [i.eq(i + 1), j.eq(i), valid.eq(issue), remaining.eq(remaining - issue)]
            with m.If(valid):
                m.d.sync += acc.eq(acc_next)
            with m.If(~issue):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        with m.Else():
            m.d.comb += [rd.addr.eq(self.host_addr), wr.addr.eq(self.host_addr),
                         wr.data.eq(self.host_wdata),
                         wr.en.eq(self.host_we & (self.host_addr < DEPTH))]
            with m.If(self.host_we & is_reg):
                m.d.sync += passes.eq(self.host_wdata)
            with m.If(self.start):
                m.d.sync += [self.busy.eq(1), self.done.eq(0), remaining.eq(total), i.eq(0),
                             valid.eq(0)]
        return m


def model(writes: list[tuple[int, int]], reads: list[int]) -> tuple[list[int], int]:
    """Expected read values and run cycles of :class:`PrefixPasses`."""
    mem, passes = [0] * DEPTH, 0
    for addr, data in writes:
        if addr < DEPTH:
            mem[addr] = data
        elif addr == PASSES_ADDR:
            passes = data
    for _ in range(passes):
        mem = [x & MASK for x in accumulate(mem)]
    values = [passes if a == PASSES_ADDR else mem[a % DEPTH] for a in reads]
    return values, passes * DEPTH + 2


@pytest.fixture(scope="session")
def verilog() -> str:
    return to_verilog(PrefixPasses(), "prefix_passes")


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory) -> Path:
    """One fresh cache root for the whole run, shared by xdist workers (their basetemps' parent)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "fast-cache"


@pytest.fixture(scope="session")
def built(verilog, shared_root):
    return build_fast(verilog, "prefix_passes", cache_root=shared_root)


def _random_writes(rng: random.Random, passes: int) -> list[tuple[int, int]]:
    writes = [(a, rng.getrandbits(32)) for a in range(DEPTH)]
    writes += [(rng.randrange(DEPTH), rng.getrandbits(32)) for _ in range(40)]   # rewrites
    writes += [(PASSES_ADDR, passes), (0, MASK)]
    return writes


class TestPorts:
    def test_emitted_top_is_reset_free(self, verilog):
        assert scan_ports(verilog, "prefix_passes") == {
            "clk": 1, "host_addr": 16, "host_wdata": 32, "host_we": 1, "host_rdata": 32,
            "start": 1, "busy": 1, "done": 1,
        }
        assert "  input clk;" in verilog

    def test_ansi_header_and_rst(self):
        text = ("// module prefix_passes(input [3:0] nope);\nmodule other(input [7:0] x);\n"
                "endmodule\nmodule t(input wire clk, input rst, input wire [31:0] host_addr,\n"
                "  output reg [63:0] host_rdata, /* input [9:0] no */ output done);\nendmodule\n")
        assert scan_ports(text, "t") == {"clk": 1, "rst": 1, "host_addr": 32, "host_rdata": 64,
                                         "done": 1}
        ports = {**scan_ports(text, "t"), "host_rdata": 40}
        source = _main_source("t", ports)
        assert "t->rst = 0;" in source and "0xffffffffffULL" in source

    def test_mode_port_set_from_the_command_line(self, tmp_path):
        text = ("module f(input clk, input [1:0] mode, input [7:0] host_addr, input [7:0] "
                "host_wdata, input host_we, output [7:0] host_rdata, input start, output busy, "
                "output done);\nendmodule\n")
        ports = _protocol_ports(text, "f")
        assert ports["mode"] == 2 and "t->mode = mode;" in _main_source("f", ports)
        assert "mode > 0x3ULL" in _main_source("f", ports)
        assert "t->mode" not in _main_source("f", {k: v for k, v in ports.items()
                                                    if k != "mode"})
        with pytest.raises(BuildError, match="f.mode is 9 bits; the fast harness takes at most 8"):
            build_fast(text.replace("[1:0] mode", "[8:0] mode"), "f", cache_root=tmp_path)
        with pytest.raises(ValueError, match=r"train_modes must be in 1\.\.4 for f, got 5"):
            build_fast(text, "f", cache_root=tmp_path, train_modes=5)

    def test_missing_ports_rejected(self, tmp_path):
        with pytest.raises(BuildError, match="lacks host-protocol ports: .*host_we"):
            build_fast("module m(input clk, output done);\nendmodule\n", "m",
                       cache_root=tmp_path)
        with pytest.raises(BuildError, match="no module named"):
            build_fast("module m(input clk);\nendmodule\n", "n", cache_root=tmp_path)


class TestRuns:
    @pytest.mark.parametrize("passes", [0, 1, 3])
    def test_bit_exact_against_model(self, built, passes):
        writes = _random_writes(random.Random(passes), passes)
        reads = [*range(DEPTH), PASSES_ADDR, 7, 0, DEPTH - 1, 7]
        run = run_fast(built, writes, reads, max_cycles=10 * DEPTH * (passes + 1))
        values, cycles = model(writes, reads)
        assert run.values == values
        assert run.run_cycles == cycles
        assert (run.load_cycles, run.read_cycles) == (len(writes), len(reads))
        assert run.run_wall_s > 0 and run.cycles_per_s > 0

    def test_max_cycles_boundary(self, built):
        writes = [(PASSES_ADDR, 2), (5, 9)]
        with pytest.raises(SimulationError, match="max_cycles=513"):
            run_fast(built, writes, [5], max_cycles=2 * DEPTH + 1)
        run = run_fast(built, writes, [5], max_cycles=2 * DEPTH + 2)
        assert run.run_cycles == 2 * DEPTH + 2 and run.values == [9]

    def test_mode_needs_a_mode_port(self, built):
        with pytest.raises(ValueError, match=r"mode must be in 0\.\.0 for prefix_passes, got 1"):
            run_fast(built, [], [0], max_cycles=10, mode=1)

    def test_values_must_fit_ports(self, built):
        with pytest.raises(ValueError, match="write data"):
            run_fast(built, [(0, 1 << 32)], [], max_cycles=10)
        with pytest.raises(ValueError, match="read address"):
            run_fast(built, [], [1 << 16], max_cycles=10)
        with pytest.raises(ValueError, match="writes"):
            run_fast(built, [(0, -1)], [], max_cycles=10)

    def test_crash_reports_stderr(self, built, tmp_path):
        fake = tmp_path / "fastsim"
        fake.write_text("#!/bin/sh\necho 'boom: segfault somewhere' >&2\nexit 139\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        broken = dataclasses.replace(built, executable=fake)
        with pytest.raises(SimulationError, match=r"(?s)status 139.*boom: segfault"):
            run_fast(broken, [], [0], max_cycles=10)


class TestBuildCache:
    def test_second_build_is_cached(self, built, verilog, shared_root):
        mtime = built.executable.stat().st_mtime_ns
        again = build_fast(verilog, "prefix_passes", cache_root=shared_root)
        assert again.cached and again.key == built.key and again.directory == built.directory
        assert again.executable.stat().st_mtime_ns == mtime      # not rebuilt
        assert again.seconds < 1.0
        assert sorted(p.name for p in again.directory.iterdir()) == [
            "build.log", "complete", "fast_main.cpp", "fastsim", "prefix_passes.v"]

    def test_profile_guided_and_plain_builds_agree(self, built, verilog, shared_root):
        plain = build_fast(verilog, "prefix_passes", cache_root=shared_root,
                           profile_guided=False)
        assert built.profile_guided and not plain.profile_guided
        assert plain.key != built.key           # separate cache entries
        assert "-fprofile-use" in (built.directory / "build.log").read_text()
        assert "-fprofile-use" not in (plain.directory / "build.log").read_text()
        writes = _random_writes(random.Random(7), 3)
        runs = [run_fast(b, writes, list(range(DEPTH)), max_cycles=10 * DEPTH * 4)
                for b in (built, plain)]
        assert runs[0].values == runs[1].values and runs[0].run_cycles == runs[1].run_cycles

    def test_broken_verilog(self, tmp_path):
        bad = ("module broken(input clk, input [7:0] host_addr, input [7:0] host_wdata,\n"
               "  input host_we, output [7:0] host_rdata, input start, output busy,\n"
               "  output done);\n  assign host_rdata = host_addr +;\nendmodule\n")
        with pytest.raises(BuildError, match=r"(?s)failed to build broken.*%Error"):
            build_fast(bad, "broken", cache_root=tmp_path)
        assert not [p for p in (tmp_path / "verilator-fast").iterdir() if p.is_dir()]
