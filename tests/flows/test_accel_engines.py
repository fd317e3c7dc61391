"""The shipped architectures' generated accelerators in Verilator (fast engine): random GEMM
and convolution shapes (extents of 1, extents that are multiples of nothing, transposed
operands), each bit-exact against golden and the reference machine, in exactly the cycles of
the model."""

import random

import numpy as np
import pytest

from flows.accel_engines import run_program
from golden.int_gemm import int_gemm
from golden.loop_nest import conv2d
from hw.front import kernel_runs
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import load_arch
from hw.front.kernel_runs import conv_operands, gemm_operands

ARCHS = ("gemmini_like", "lego_fused")


def _shapes(seed: int, count: int) -> list[tuple[int, int, int, bool, bool]]:
    rnd = random.Random(seed)
    pick = [1, 2, 7, 16, 17, 31, 45]
    return [(rnd.choice(pick), rnd.choice(pick), rnd.choice(pick), rnd.random() < 0.3,
             rnd.random() < 0.3) for _ in range(count)]


def _check(arch, run):
    model = accel_timing(run.program, accel_params(arch)).cycles
    rtl = run_program(arch, run.program, run.dram_in, engine="fast", expected_cycles=model)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == model


@pytest.mark.parametrize("name", ARCHS)
def test_random_gemms(name):
    arch = load_arch(f"examples/arch/{name}.yaml")
    rng = np.random.default_rng(7)
    t = arch.types[0]
    for n, (m, nn, k, a_t, b_t) in enumerate(_shapes(len(name), 6)):
        flow = arch.dataflows[n % len(arch.dataflows)].name
        a = rng.integers(t.min, t.max + 1, (m, k))
        b = rng.integers(t.min, t.max + 1, (k, nn))
        run = kernel_runs.run_gemm(arch, flow, gemm_operands(arch, m, nn, k, a_t, b_t), a, b)
        np.testing.assert_array_equal(run.output, int_gemm(a, b, t, t, arch.types[2].bits))
        _check(arch, run)


@pytest.mark.parametrize("name", ARCHS)
def test_convolutions(name):
    arch = load_arch(f"examples/arch/{name}.yaml")
    rng = np.random.default_rng(3)
    for n, (c, h, w, kk, r, s) in enumerate([(3, 7, 9, 5, 3, 3), (17, 4, 5, 18, 2, 1)]):
        flow = arch.dataflows[-1 - n % len(arch.dataflows)].name
        image = rng.integers(-128, 128, (c, h, w))
        weights = rng.integers(-128, 128, (kk, c, r, s))
        run = kernel_runs.run_conv(arch, flow, conv_operands(arch, c, h, w, kk, r, s), image,
                                   weights)
        np.testing.assert_array_equal(run.output, conv2d(image, weights, 32))
        _check(arch, run)


@pytest.mark.parametrize("name", ARCHS)
def test_slot_and_accumulator_moves(name):
    """``mvin col=`` and ``acc=1`` (plain, transposed) among the other instructions, what they
    moved observed: the reference DRAM in the model's cycles (Verilator agrees with
    Amaranth's simulator, :mod:`tests.sim.test_accel_moves_pysim`)."""
    from hw.front.isa_machine import Machine
    from tests.hw.accel_cases import DRAM_BYTES, random_move_program

    arch = load_arch(f"examples/arch/{name}.yaml")
    for seed in range(3):
        rnd = random.Random(seed)
        program = random_move_program(arch, rnd, 80)
        dram = bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))
        machine = Machine(arch, len(dram))
        machine.write_dram(0, dram)
        machine.run(program)
        model = accel_timing(program, accel_params(arch)).cycles
        rtl = run_program(arch, program, dram, engine="fast", expected_cycles=model)
        assert rtl.dram == machine.dram.tobytes()
        assert rtl.cycles == model
