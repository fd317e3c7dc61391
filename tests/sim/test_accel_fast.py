"""The fast accelerator harness of :mod:`sim.accel_fast` (DRAM model, cycle protocol) on a
mock accelerator.

:class:`MockAccel` has the real accelerator's ports (:func:`hw.rtl.accel_ports.accel_signature`,
a ``sync`` domain with reset) and a tiny instruction set of its own whose cycle counts follow
from the protocol (:func:`expected`). Each mock design is built once per test module (cached
by hash under ``sim.toolchain.cache_dir()``); :mod:`tests.sim.test_accel_cocotb` reuses the
mock.
"""

from __future__ import annotations

import dataclasses
import random
import stat

import pytest
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring

from hw.rtl.accel_ports import accel_signature
from sim.accel_fast import (
    TRAIN_WORDS,
    accel_ports,
    build_accel_fast,
    check_run_args,
    run_accel_fast,
)
from sim.errors import BuildError, SimulationError

# Mock opcodes (bits 0-3 of a word); any other opcode (the ISA's fence, 4, among them) is a
# no-op that takes one cycle.
COPY, IDLE, PROBE = 1, 2, 3


def copy(src: int, dst: int, n: int) -> int:
    """Copy ``n`` bytes from ``src`` to ``dst``, one bus-wide chunk at a time: read the chunk,
    wait for the data, write it in the response's cycle."""
    return COPY | src << 4 | dst << 36 | n << 68


def idle(k: int) -> int:
    """Stay busy for ``k`` cycles."""
    return IDLE | k << 4


def probe(src: int, dst: int) -> int:
    """Read 1 byte at ``src``; write W bytes at ``dst``: byte 0 the cycles from the request to
    the response (the latency), bytes 1.. those of ``mem_resp_data`` (all 0)."""
    return PROBE | src << 4 | dst << 36


class MockAccel(wiring.Component):
    """A mock accelerator: one instruction at a time, ``busy`` while one runs."""

    def __init__(self, bus_bytes: int) -> None:
        self.bus_bytes = bus_bytes
        super().__init__(accel_signature(bus_bytes))

    def elaborate(self, platform) -> Module:
        m, w = Module(), self.bus_bytes
        src, dst, cnt = Signal(32, name="src"), Signal(32, name="dst"), Signal(32, name="cnt")
        n, off = Signal(16, name="n"), Signal(16, name="off")
        chunk, rem = Signal(range(w + 1), name="chunk"), Signal(16, name="rem")
        op = self.cmd_data[0:4]
        m.d.comb += rem.eq(n - off)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd_ready.eq(1)
                with m.If(self.cmd_valid):
                    m.d.sync += [src.eq(self.cmd_data[4:36]), dst.eq(self.cmd_data[36:68]),
                                 n.eq(self.cmd_data[68:84]), off.eq(0),
                                 cnt.eq(self.cmd_data[4:36])]
                    with m.If((op == COPY) & (self.cmd_data[68:84] != 0)):
                        m.next = "READ"
                    with m.If((op == IDLE) & (self.cmd_data[4:36] != 0)):
                        m.next = "COUNT"
                    with m.If(op == PROBE):
                        m.next = "PROBE_REQ"
            with m.State("READ"):
                length = Mux(rem > w, w, rem)
                m.d.comb += [self.busy.eq(1), self.mem_req_valid.eq(1),
                             self.mem_req_addr.eq(src + off), self.mem_req_len.eq(length)]
                m.d.sync += chunk.eq(length)
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.mem_resp_valid):
                    m.d.comb += [self.mem_req_valid.eq(1), self.mem_req_write.eq(1),
                                 self.mem_req_addr.eq(dst + off), self.mem_req_len.eq(chunk),
                                 self.mem_req_wdata.eq(self.mem_resp_data)]
                    m.d.sync += off.eq(off + chunk)
                    with m.If(off + chunk == n):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "READ"
            with m.State("COUNT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 1):
                    m.next = "IDLE"
            with m.State("PROBE_REQ"):
                m.d.comb += [self.busy.eq(1), self.mem_req_valid.eq(1),
                             self.mem_req_addr.eq(src), self.mem_req_len.eq(1)]
                m.d.sync += cnt.eq(1)
                m.next = "PROBE_WAIT"
            with m.State("PROBE_WAIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(self.mem_resp_valid):
                    m.d.comb += [self.mem_req_valid.eq(1), self.mem_req_write.eq(1),
                                 self.mem_req_addr.eq(dst), self.mem_req_len.eq(w),
                                 self.mem_req_wdata.eq(Cat(cnt[0:8],
                                                           self.mem_resp_data[8:]))]
                    m.next = "IDLE"
        return m


def mock_verilog(bus_bytes: int) -> tuple[str, str]:
    """(Verilog, top name) of the mock for a ``bus_bytes``-byte bus."""
    top = f"mock_accel_w{bus_bytes}"
    return amaranth_verilog.convert(MockAccel(bus_bytes), name=top, emit_src=False), top


def expected(words: list[int], dram: bytes, bus_bytes: int,
             latency: int) -> tuple[int, bytes]:
    """The mock's cycles and final DRAM under the protocol of :mod:`sim.accel_fast`.

    The mock takes a word in the cycle it is presented when idle; a copy of ``k`` chunks then
    takes ``1 + k * (latency + 1)`` cycles up to its next idle cycle (read, ``latency``
    cycles later the write), an idle ``1 + k``, a probe ``latency + 2``, anything else 1.
    """
    mem, cycles = bytearray(dram), 0
    for word in words:
        op, a, b = word & 15, (word >> 4) & 0xFFFF_FFFF, (word >> 36) & 0xFFFF_FFFF
        n = (word >> 68) & 0xFFFF
        if op == COPY:
            for off in range(0, n, bus_bytes):
                length = min(bus_bytes, n - off)
                mem[b + off:b + off + length] = mem[a + off:a + off + length]
            cycles += 1 + -(-n // bus_bytes) * (latency + 1)
        elif op == IDLE:
            cycles += 1 + a
        elif op == PROBE:
            mem[b:b + bus_bytes] = bytes([latency & 255]) + bytes(bus_bytes - 1)
            cycles += latency + 2
        else:
            cycles += 1
    return cycles, bytes(mem)


def program(rng: random.Random, size: int) -> list[int]:
    """A mixed program on a ``size``-byte DRAM: copies (odd lengths, unaligned, one
    overlapping), idles, probes, no-ops."""
    return [copy(0, size // 2, 37), idle(5), copy(3, 1, 20), TRAIN_WORDS[0], probe(7, 200),
            copy(rng.randrange(64), 300 + rng.randrange(64), rng.randrange(1, 90)), idle(0),
            copy(10, 20, 0), probe(size - 1, size - 40)]


@pytest.fixture(scope="module", params=[16, 5], ids=["w16", "w5"])
def mock(request):
    """(bus bytes, Verilog, top, build): W=16 (VlWide ports, profile guided) and W=5 (40-bit
    integer ports, plain build)."""
    w = request.param
    verilog, top = mock_verilog(w)
    return w, verilog, top, build_accel_fast(verilog, top, profile_guided=w == 16)


def _dram(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class TestPorts:
    def test_mock_ports(self):
        verilog, top = mock_verilog(16)
        ports = accel_ports(verilog, top)
        assert ports["clk"] == ports["rst"] == 1 and ports["cmd_data"] == 128
        assert (ports["mem_req_wdata"], ports["mem_resp_data"], ports["mem_req_len"]) == \
            (128, 128, 5)

    def test_bad_ports_rejected(self, tmp_path):
        verilog, top = mock_verilog(4)
        with pytest.raises(BuildError, match="lacks accelerator ports: rst"):
            build_accel_fast(verilog.replace("input rst;", "input rst_n;"), top,
                             cache_root=tmp_path)
        with pytest.raises(BuildError, match=r"mem_req_len is 3 bits; a 2-byte bus needs 2"):
            accel_ports(verilog.replace("output [31:0] mem_req_wdata",
                                        "output [15:0] mem_req_wdata"), top)
        with pytest.raises(BuildError, match="mem_req_wdata must be a whole number of bytes"):
            accel_ports(verilog.replace("output [31:0] mem_req_wdata",
                                        "output [30:0] mem_req_wdata"), top)

    def test_run_arguments_checked(self):
        with pytest.raises(ValueError, match=r"words\[1\] must be a 128-bit"):
            check_run_args([1, 1 << 128], b"", 1, 10)
        with pytest.raises(ValueError, match="latency must be an integer in 1..65536, got 0"):
            check_run_args([], b"", 0, 10)
        with pytest.raises(ValueError, match="max_cycles must be a non-negative integer"):
            check_run_args([], b"", 1, -1)


class TestRuns:
    @pytest.mark.parametrize("latency", [1, 2, 9])
    def test_program_round_trip_and_cycles(self, mock, latency):
        w, _, _, built = mock
        dram = _dram(1024, latency)
        words = program(random.Random(latency), len(dram))
        cycles, final = expected(words, dram, w, latency)
        run = run_accel_fast(built, words, dram, latency=latency, max_cycles=10_000)
        assert run.cycles == cycles
        assert run.dram == final
        assert run.wall_s > 0 and run.cycles_per_s > 0

    def test_single_copy_cycle_count(self, mock):
        """One copy of 3 chunks, L = 4: consumed in cycle 0, chunk j read in cycle
        1 + 5j and written in cycle 5(j + 1); idle (done) in cycle 16."""
        w, _, _, built = mock
        dram = _dram(256, 1)
        run = run_accel_fast(built, [copy(0, 128, 3 * w)], dram, latency=4, max_cycles=16)
        assert run.cycles == 16
        assert run.dram == dram[:128] + dram[:3 * w] + dram[128 + 3 * w:]

    def test_empty_program(self, mock):
        run = run_accel_fast(mock[3], [], b"\x01\x02", latency=3, max_cycles=0)
        assert (run.cycles, run.dram) == (0, b"\x01\x02")

    @pytest.mark.parametrize("latency", [1, 3, 200])
    def test_latency_exact(self, mock, latency):
        """The probe counts the cycles from its request to the response: exactly L; the
        response's bytes beyond the request's length are 0."""
        w, _, _, built = mock
        dram = bytes(range(1, 65))
        run = run_accel_fast(built, [probe(0, 32)], dram, latency=latency, max_cycles=1000)
        assert run.dram[32:32 + w] == bytes([latency & 255]) + bytes(w - 1)
        assert run.cycles == latency + 2

    def test_request_outside_dram(self, mock):
        w, _, _, built = mock
        with pytest.raises(SimulationError, match=rf"cycle 1: read request addr=0x3d "
                                                  rf"len={min(w, 10)} outside the DRAM model "
                                                  rf"\(64 bytes"):
            run_accel_fast(built, [copy(61, 0, 10)], bytes(64), latency=2, max_cycles=100)
        # a write past the end, after a good read: cycle 1 + L
        with pytest.raises(SimulationError, match=r"cycle 4: write request addr=0x40 len=1"):
            run_accel_fast(built, [copy(0, 64, 1)], bytes(64), latency=3, max_cycles=100)

    def test_max_cycles(self, mock):
        built = mock[3]
        with pytest.raises(SimulationError, match="after max_cycles=100 cycles"):
            run_accel_fast(built, [idle(100)], b"", latency=1, max_cycles=100)
        assert run_accel_fast(built, [idle(100)], b"", latency=1, max_cycles=101).cycles == 101
        with pytest.raises(SimulationError, match="max_cycles=2 "):      # words left over
            run_accel_fast(built, [0, 0, 0], b"", latency=1, max_cycles=2)

    def test_progress(self, mock):
        built, seen = mock[3], []
        run = run_accel_fast(built, [idle(10_000)], b"", latency=1, max_cycles=20_000,
                             progress=seen.append, progress_interval=3000)
        assert run.cycles == 10_001 and seen == [3000, 6000, 9000]

    def test_timeout(self, mock):
        with pytest.raises(SimulationError, match=r"exceeded 0\.2 s"):
            run_accel_fast(mock[3], [idle(0xFFFF_FFFF)], b"", latency=1,
                           max_cycles=1 << 40, timeout_s=0.2)

    def test_crash_reports_stderr(self, mock, tmp_path):
        fake = tmp_path / "fastsim"
        fake.write_text("#!/bin/sh\necho 'boom: segfault somewhere' >&2\nexit 139\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        broken = dataclasses.replace(mock[3], executable=fake)
        with pytest.raises(SimulationError, match=r"(?s)status 139.*boom: segfault"):
            run_accel_fast(broken, [], b"", latency=1, max_cycles=10)


class TestBuild:
    def test_cached_and_profile_guided(self, mock):
        w, verilog, top, built = mock
        again = build_accel_fast(verilog, top, profile_guided=w == 16)
        assert again.cached and again.key == built.key and again.seconds < 1.0
        assert again.bus_bytes == w and built.profile_guided == (w == 16)
        log = (built.directory / "build.log").read_text()
        assert ("-fprofile-use" in log) == (w == 16)


def test_progress_long_run():
    """~3M cycles at the default interval (2**20): two progress lines (the W=16 mock, whose
    build the fixture has cached)."""
    verilog, top = mock_verilog(16)
    built, seen = build_accel_fast(verilog, top), []
    run = run_accel_fast(built, [idle(3_000_000)], b"", latency=1, max_cycles=4_000_000,
                         progress=seen.append)
    assert run.cycles == 3_000_001 and seen == [1 << 20, 2 << 20]
