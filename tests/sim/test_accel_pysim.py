"""The generated accelerator in Amaranth's simulator: every program computes what the
reference machine computes (bit-exact DRAM) in exactly the cycles the model predicts, on
small architectures of every supported kind; DMA/compute overlap is real and modelled."""

import random

import numpy as np
import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.isa import Instruction, encode
from hw.front.isa_machine import Machine, pack
from hw.front.kernel_runs import gemm_operands
from hw.front.kernels import gemm_program
from sim.accel_pysim import run_accel_pysim
from sim.errors import SimulationError
from tests.hw.accel_cases import DRAM_BYTES, random_program, tiny_arch

ARCHS = {v: tiny_arch(v) for v in ("int8", "int4", "uint8", "slow")}


def _run_both(arch, program, dram: bytes):
    machine = Machine(arch, len(dram))
    machine.write_dram(0, dram)
    machine.run(program)
    run = run_accel_pysim(arch, [encode(i) for i in program], dram, max_cycles=50_000)
    return machine.dram.tobytes(), run


@pytest.mark.parametrize("variant,seed", [(v, s) for v in ARCHS for s in range(4)])
def test_random_programs_bit_exact_and_cycle_exact(variant, seed):
    arch = ARCHS[variant]
    rnd = random.Random(1000 * seed + len(variant))
    program = random_program(arch, rnd, 30)
    dram = bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))
    expected, run = _run_both(arch, program, dram)
    assert run.dram == expected
    assert run.cycles == accel_timing(program, accel_params(arch)).cycles


def _gemm(arch, flow, m, n, k, a_t=False, b_t=False, seed=0):
    a_type = arch.types[0]
    rnd = np.random.default_rng(seed)
    a = rnd.integers(a_type.min, a_type.max + 1, (m, k))
    b = rnd.integers(a_type.min, a_type.max + 1, (k, n))
    ops = gemm_operands(arch, m, n, k, a_t, b_t)
    program = gemm_program(arch, flow, ops)
    dram = bytearray(ops.c_addr + m * n * arch.types[2].bits // 8 + 64)
    dram[ops.a_addr:ops.a_addr + len(pack(a, a_type))] = pack(a.T if a_t else a, a_type)
    dram[ops.b_addr:ops.b_addr + len(pack(b, a_type))] = pack(b.T if b_t else b, a_type)
    return a, b, ops, program, bytes(dram)


@pytest.mark.parametrize("flow", ["os", "ws", "is_", "sr"])
@pytest.mark.parametrize("shape", [(5, 6, 7, False, False), (1, 9, 13, True, False),
                                   (9, 1, 1, False, True), (3, 17, 4, True, True)])
def test_kernel_gemms_on_the_accelerator(flow, shape):
    arch = ARCHS["int8"]
    m, n, k, a_t, b_t = shape
    a, b, ops, program, dram = _gemm(arch, flow, m, n, k, a_t, b_t)
    expected, run = _run_both(arch, program, dram)
    c = np.frombuffer(run.dram[ops.c_addr:ops.c_addr + m * n * 4], dtype="<i4").reshape(m, n)
    np.testing.assert_array_equal(c, a @ b)
    assert run.dram == expected
    assert run.cycles == accel_timing(program, accel_params(arch)).cycles


def test_dma_overlap_matters():
    """The same tiles with a fence after every compute (DMA and array serialised) take the
    cycles the model predicts for each, and the difference is the overlap the model gives."""
    arch = ARCHS["int8"]
    *_, program, dram = _gemm(arch, "ws", 13, 9, 11)
    serial = []
    for ins in program:
        serial.append(ins)
        if ins.op == "compute":
            serial.append(Instruction("fence"))
    params = accel_params(arch)
    overlapped_model = accel_timing(program, params).cycles
    serial_model = accel_timing(serial, params).cycles
    _, overlapped = _run_both(arch, program, dram)
    _, serialised = _run_both(arch, serial, dram)
    assert (overlapped.cycles, serialised.cycles) == (overlapped_model, serial_model)
    assert serialised.cycles - overlapped.cycles == serial_model - overlapped_model > 0


def test_requests_outside_dram_stop_the_run():
    arch = ARCHS["int8"]
    ins = Instruction("mvin", (("dram", 60), ("stride", 4), ("sp", 0), ("rows", 2),
                               ("cols", 4)))
    with pytest.raises(SimulationError, match=r"cycle 3: read request addr=0x40 len=4 "
                                              r"outside the DRAM model \(64 bytes"):
        run_accel_pysim(arch, [encode(ins)], bytes(64))


def test_max_cycles_is_enforced():
    arch = ARCHS["int8"]
    ins = Instruction("mvin", (("dram", 0), ("stride", 4), ("sp", 0), ("rows", 4), ("cols", 4)))
    with pytest.raises(SimulationError, match="max_cycles=5"):
        run_accel_pysim(arch, [encode(ins)], bytes(64), max_cycles=5)
