"""The cocotb accelerator engine (:mod:`sim.accel_cocotb`, :mod:`sim.benches.accel_bench`) on
the mock accelerator of :mod:`tests.sim.test_accel_fast`: its DRAM model alone, the mock's
known cycles and DRAM, the same errors as the fast engine, and agreement with it.

One cocotb build of the W=16 mock (cached by hash under ``sim.toolchain.cache_dir()``); the
fast build is the one :mod:`tests.sim.test_accel_fast` makes (cached too).
"""

from __future__ import annotations

import random

import pytest

from sim.accel_cocotb import DramModel, run_accel_cocotb
from sim.accel_fast import build_accel_fast, run_accel_fast
from sim.errors import SimulationError
from tests.sim.test_accel_fast import copy, expected, idle, mock_verilog, probe, program

W = 16


@pytest.fixture(scope="module")
def mock() -> tuple[str, str]:
    return mock_verilog(W)


class TestDramModel:
    def test_latency_and_order(self):
        dram = DramModel(bytes(range(32)), 4, latency=2)
        dram.request(0, False, 5, 3, 0)
        assert dram.response(1) is None
        dram.request(1, True, 6, 2, 0xAABBCC)          # only the low 2 bytes land
        dram.request(2, False, 5, 4, 0)                # sees the write of cycle 1
        assert dram.response(2) == int.from_bytes(bytes([5, 6, 7]), "little")
        assert dram.response(3) is None
        assert dram.response(4) == int.from_bytes(bytes([5, 0xCC, 0xBB, 8]), "little")
        assert dram.mem[5:9] == bytes([5, 0xCC, 0xBB, 8])

    def test_bad_requests(self):
        dram = DramModel(bytes(16), 4, latency=1)
        with pytest.raises(SimulationError, match=r"cycle 7: read request addr=0xd len=4 "
                                                  r"outside the DRAM model \(16 bytes"):
            dram.request(7, False, 13, 4, 0)
        with pytest.raises(SimulationError, match="write request addr=0x0 len=0"):
            dram.request(0, True, 0, 0, 0)
        with pytest.raises(SimulationError, match="len=5 outside"):
            dram.request(0, True, 0, 5, 0)
        with pytest.raises(ValueError, match="latency must be a positive integer, got 0"):
            DramModel(b"", 4, latency=0)


class TestRuns:
    def test_program_agrees_with_model_and_fast_engine(self, mock):
        verilog, top = mock
        dram = random.Random(3).randbytes(512)
        words = program(random.Random(3), len(dram))
        cycles, final = expected(words, dram, W, 3)
        run = run_accel_cocotb(verilog, top, words, dram, latency=3, max_cycles=1000)
        assert (run.cycles, run.dram) == (cycles, final)
        assert run.wall_s > 0 and run.cycles_per_s > 0
        fast = run_accel_fast(build_accel_fast(verilog, top), words, dram, latency=3,
                              max_cycles=1000)
        assert (fast.cycles, fast.dram) == (run.cycles, run.dram)

    def test_latency_exact(self, mock):
        run = run_accel_cocotb(*mock, [probe(0, 32), copy(0, 64, 2 * W)], bytes(range(1, 97)),
                               latency=5, max_cycles=100)
        assert run.dram[32:32 + W] == bytes([5]) + bytes(W - 1)
        assert run.dram[64:64 + 2 * W] == bytes(range(1, 2 * W + 1))
        assert run.cycles == (5 + 2) + (1 + 2 * (5 + 1))

    def test_errors_match_the_fast_engine(self, mock):
        with pytest.raises(SimulationError, match=r"mock_accel_w16: cycle 1: read request "
                                                  r"addr=0x3d len=10 outside the DRAM model"):
            run_accel_cocotb(*mock, [copy(61, 0, 10)], bytes(64), latency=2, max_cycles=100)
        with pytest.raises(SimulationError, match="after max_cycles=50 cycles"):
            run_accel_cocotb(*mock, [idle(50)], b"", latency=1, max_cycles=50)
        assert run_accel_cocotb(*mock, [idle(50)], b"", latency=1, max_cycles=51).cycles == 51

    def test_arguments_checked(self, mock):
        with pytest.raises(ValueError, match="latency must be an integer"):
            run_accel_cocotb(*mock, [], b"", latency=0, max_cycles=10)
