"""The kernel library's programs are ordered for the generated accelerator: on its cycle model
(:mod:`hw.front.accel_timing`, equal to the RTL's cycles: in-order dispatch to a pipelined DMA
and an execution unit, an instruction waiting while it conflicts with an in-flight one of the
other unit), DMA and compute overlap and the DRAM latency hides behind the prefetch."""

from dataclasses import replace

import numpy as np
import pytest

from golden.int_gemm import int_gemm
from hw.front import kernel_runs
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing, move_cycles
from hw.front.arch import load_arch
from hw.front.kernel_runs import gemm_operands
from hw.front.kernel_schedule import tile_cycles
from hw.front.kernels import GemmOperands, GemmSchedule, gemm_program, gemm_schedule

ARCHS = {n: load_arch(f"examples/arch/{n}.yaml") for n in ("gemmini_like", "lego_fused")}
CASES = [(n, d.name) for n, a in ARCHS.items() for d in a.dataflows]


def cycles(program, arch):
    return accel_timing(program, accel_params(arch)).cycles


def bound(program, arch, dataflow):
    """No order runs the program faster: the execution unit's cycles (every compute's) or
    the DMA's (every move's)."""
    params = accel_params(arch)
    compute = sum(tile_cycles(arch, dataflow, (i["i"], i["j"], i["k"]))
                  for i in program if i.op == "compute")
    dma = sum(move_cycles(params, i)[0] for i in program if i.op in ("mvin", "mvout"))
    return max(compute, dma)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@pytest.mark.parametrize("m, n, k", [(128, 128, 512), (64, 256, 96), (200, 48, 300),
                                     (16, 512, 64), (1, 2048, 256)])
def test_programs_overlap_dma_and_compute(arch_name, dataflow, m, n, k):
    """Within 20% of the bound, plus a few latencies at the ends (the first pieces and the
    last C block)."""
    arch = ARCHS[arch_name]
    program = gemm_program(arch, dataflow, GemmOperands(m, n, k, 0, 1 << 20, 1 << 21))
    least = bound(program, arch, dataflow)
    assert cycles(program, arch) <= 1.2 * least + 3 * arch.dram.latency_cycles, least


def test_prefetch_hides_latency_of_short_steps():
    """Steps shorter than the DRAM latency: the default prefetch reaches far enough that the
    program runs near its bound; prefetching one step exposes the latency."""
    arch = ARCHS["lego_fused"]
    ops = GemmOperands(16, 512, 64, 0, 1 << 20, 1 << 21)
    s = gemm_schedule(arch, "output_stationary", ops.extents())
    assert s.prefetch > 1
    near = cycles(gemm_program(arch, "output_stationary", ops, s), arch)
    far = cycles(gemm_program(arch, "output_stationary", ops, replace(s, prefetch=1)), arch)
    assert near < 0.9 * far


def test_reordered_programs_still_compute_the_gemm():
    """The order is the program's semantics on the reference machine: several resident
    blocks, each buffer count, a deep prefetch."""
    arch = ARCHS["gemmini_like"]
    rng = np.random.default_rng(3)
    a, b = rng.integers(-128, 128, (70, 90)), rng.integers(-128, 128, (90, 50))
    ops = gemm_operands(arch, 70, 50, 90)
    for buffers in (1, 2):
        s = GemmSchedule((16, 16, 32), (32, 16, 64), 32, "A", 3, buffers)
        out = kernel_runs.run_gemm(arch, "output_stationary", ops, a, b, s).output
        np.testing.assert_array_equal(out, int_gemm(a, b, "int8", "int8", 32))
