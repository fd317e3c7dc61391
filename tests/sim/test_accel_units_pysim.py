"""The generated accelerator's workload units in Amaranth's simulator: programs with the unit
commands the RTL executes (requant absmax / operand / wide / slices, normalizer divide) and
ReLU'd moves compute what the reference machine computes (bit-exact DRAM) in the cycles the
model predicts; whole linear-attention heads equal golden's chain, extremes included."""

import random

import numpy as np
import pytest

from golden.linear_attention_chain import linear_attention_chain_int
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.isa import ProgramError, encode
from hw.front.isa_machine import Machine
from hw.front.kernel_attention import run_linear_attention
from sim.accel_pysim import run_accel_pysim
from tests.hw.accel_cases import DRAM_BYTES, random_unit_program, tiny_arch

ARCH = tiny_arch("units")


def _reference(program, dram: bytes) -> bytes:
    machine = Machine(ARCH, len(dram))
    machine.write_dram(0, dram)
    machine.run(program)
    return machine.dram.tobytes()


def _program(seed: int):
    """A random unit program the reference machine accepts, with its DRAM (draws again while
    a normalizer's numerator leaves its input range)."""
    rnd = random.Random(seed)
    while True:
        program = random_unit_program(ARCH, rnd, 60)
        dram = bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))
        try:
            return program, dram, _reference(program, dram)
        except ProgramError:
            continue


@pytest.mark.parametrize("seed", range(8))
def test_random_unit_programs_bit_exact_and_cycle_exact(seed):
    program, dram, expected = _program(seed)
    run = run_accel_pysim(ARCH, [encode(i) for i in program], dram, max_cycles=50_000)
    assert run.dram == expected
    assert run.cycles == accel_timing(program, accel_params(ARCH)).cycles


@pytest.mark.parametrize("seed", range(4))
def test_the_random_programs_see_the_units(seed):
    """The comparison above could fail: without the unit commands, or without the ReLU of
    the moves, the programs leave a different DRAM."""
    program, dram, expected = _program(seed)
    for drop in (lambda i: i.op == "unit", lambda i: i.op == "mvin" and i["relu"]):
        assert _reference([i for i in program if not drop(i)], dram) != expected


def _head(q, k, v):
    run = run_linear_attention(ARCH, q, k, v)
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=100_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles
    nrm = ARCH.units.normalizer
    want = linear_attention_chain_int(q, k, v, nrm.out_frac_bits, nrm.den_bits,
                                      nrm.recip_frac_bits).out
    np.testing.assert_array_equal(run.output, want)
    return run.output


@pytest.mark.parametrize("n,d,dv,seed", [(6, 4, 3, 0), (9, 5, 6, 1), (17, 3, 4, 2),
                                         (1, 4, 4, 4)])
def test_linear_attention_heads_on_the_rtl(n, d, dv, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    assert np.any(_head(q, k, v) != 0)


def test_linear_attention_extremes_on_the_rtl():
    """All-negative keys (ReLU'd to zero: every denominator 0, golden's output 0), codes at
    -128 and 127 (the requantizer's saturation), and a query that is all negative."""
    n, d, dv = 7, 4, 4
    rng = np.random.default_rng(9)
    v = rng.integers(-128, 128, (n, dv))
    q = rng.integers(-128, 128, (n, d))
    assert np.all(_head(q, -rng.integers(1, 129, (n, d)), v) == 0)
    k = np.where(rng.random((n, d)) < 0.5, 127, -128)
    q[2] = -5
    out = _head(np.full((n, d), 127), k, np.where(rng.random((n, dv)) < 0.5, 127, -128))
    assert np.any(out != 0)
    _head(q, k, v)
