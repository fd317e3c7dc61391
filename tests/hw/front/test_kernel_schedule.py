"""GEMM schedules: what a valid schedule is, how it fits the memories, and what the default
choice achieves (operands moved once when they fit, blocked reuse when they do not, a cost
model fast enough for a mapper)."""


import pytest

from hw.front.arch import load_arch
from hw.front.kernel_choice import choose_schedule, estimate
from hw.front.kernel_schedule import GemmProblem, GemmSchedule, plan_schedule
from hw.front.kernels import GemmOperands, gemm_cost, gemm_instructions, gemm_schedule
from hw.front.spec_model import SpecError

ARCHS = {n: load_arch(f"examples/arch/{n}.yaml") for n in ("gemmini_like", "lego_fused")}
CASES = [(n, d.name) for n, a in ARCHS.items() for d in a.dataflows]


@pytest.mark.parametrize("args, message", [
    (((16, 16, 16), (20, 16, 16), 16), "block i=20 is not a multiple of tile i=16"),
    (((16, 16, 16), (16, 16, 64), 24), "k_step=24 must be a multiple of tile k=16 and divide"),
    (((16, 16, 16), (16, 16, 16), 16, "C"), "resident must be 'A' or 'B', got 'C'"),
    (((16, 16, 16), (16, 16, 16), 16, "A", 9), "prefetch must be at most 8"),
    (((16, 16, 16), (16, 16, 16), 16, "A", 1, 3), "resident_buffers must be 1 or 2, got 3"),
    (((16, 0, 16), (16, 16, 16), 16), "schedule tile j must be a positive integer, got 0"),
    (((16, 16), (16, 16, 16), 16), "schedule tile must be a tuple"),
])
def test_bad_schedules(args, message):
    with pytest.raises(ValueError, match=message):
        GemmSchedule(*args)


def test_schedules_that_do_not_fit():
    arch = ARCHS["gemmini_like"]
    problem = GemmProblem((4096, 4096, 4096))
    with pytest.raises(SpecError, match="need 139264 scratchpad rows; 'gemmini_like' has 16384"):
        plan_schedule(arch, "output_stationary", problem,
                      GemmSchedule((16, 16, 4096), (512, 16, 4096), 4096))
    with pytest.raises(SpecError, match="a C block of 1024 rows does not fit half the"):
        plan_schedule(arch, "output_stationary", problem,
                      GemmSchedule((16, 16, 16), (1024, 16, 16), 16))
    with pytest.raises(SpecError, match=r"tile i=32 exceeds the array \(16\)"):
        plan_schedule(arch, "output_stationary", problem,
                      GemmSchedule((32, 16, 16), (32, 16, 16), 16))
    with pytest.raises(SpecError, match=r"tile j=32 exceeds the array \(16\)"):
        gemm_schedule(arch, "output_stationary", (64, 64, 64), tile=(16, 32, 16))


def test_plan_clips_to_the_problem():
    arch = ARCHS["lego_fused"]
    plan = plan_schedule(arch, "output_stationary", GemmProblem((20, 7, 30)),
                         GemmSchedule((16, 16, 64), (64, 32, 128), 64, "B", 2, 2))
    assert (plan.tile, plan.block, plan.k_step) == ((16, 7, 30), (32, 7, 30), 30)
    assert plan.rows == {"X": 30, "Y": 30 * 1, "C": 20}         # B^T: k rows; A^T: k rows
    assert plan.y_slots == 3 and plan.c_slots == 8
    assert plan.scratchpad_rows == 2 * 30 + 3 * 30


@pytest.mark.parametrize("arch_name, dataflow", CASES)
def test_operands_that_fit_move_once(arch_name, dataflow):
    """When A, B and C fit the memories, the default schedule moves each once."""
    arch = ARCHS[arch_name]
    for m, n, k in ((256, 256, 256), (64, 48, 80), (1024, 32, 32), (32, 32, 1024), (1, 700, 9)):
        cost = gemm_cost(arch, dataflow, GemmOperands(m, n, k, 0, 1 << 24, 1 << 25))
        assert cost.dram_read_bytes == m * k + k * n, (m, n, k)
        assert cost.dram_written_bytes == 4 * m * n


@pytest.mark.parametrize("arch_name, dataflow", CASES)
def test_large_gemm_reuses_the_resident_block(arch_name, dataflow):
    """1024 x 3072 x 3072: A (3 MiB) and B (9 MiB) do not fit the 256 KiB scratchpad; the
    resident block serves many streamed pieces, so the traffic is a small multiple of the
    operands (each output tile reloading its panels would move 2 x 3072 rows per tile:
    over 600 MB) and the estimate keeps the array busy."""
    arch = ARCHS[arch_name]
    ops = GemmOperands(1024, 3072, 3072, 0, 1 << 28, 1 << 29)
    cost = gemm_cost(arch, dataflow, ops)
    operands = 1024 * 3072 + 3072 * 3072 + 4 * 1024 * 3072
    assert cost.dram_bytes < 12 * operands
    plan = plan_schedule(arch, dataflow, GemmProblem(ops.extents()),
                         gemm_schedule(arch, dataflow, ops.extents()))
    cycles, dram, _ = estimate(arch, dataflow, plan)
    assert dram == cost.dram_bytes and cost.macs / arch.pes / cycles > 0.9


def test_cost_of_a_large_gemm_without_building_it():
    """The default choice and the closed-form cost of a 4096^3 GEMM (a mapper's call: no
    program is built; its speed is benchmarks/'s to measure): every MAC counted once, each
    operand read at least once, the result written once, millions of instructions."""
    arch = ARCHS["lego_fused"]
    n = 4096
    ops = GemmOperands(n, n, n, 0, 1 << 28, 1 << 29)
    for dataflow in [d.name for d in arch.dataflows]:
        choose_schedule.cache_clear()
        cost = gemm_cost(arch, dataflow, ops)
        assert cost.macs == n ** 3
        assert cost.dram_read_bytes >= 2 * n * n and cost.dram_written_bytes == 4 * n * n
        assert gemm_instructions(arch, dataflow, ops) > n * n // (16 * 16)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
def test_default_schedules_are_valid(arch_name, dataflow):
    """The default choice fits, for extents from 1 to far past the memories."""
    arch = ARCHS[arch_name]
    for ext in ((1, 1, 1), (3, 5, 7), (17, 1, 100000), (100000, 3, 17), (5000, 5000, 5000)):
        s = gemm_schedule(arch, dataflow, ext)
        plan = plan_schedule(arch, dataflow, GemmProblem(ext), s)
        assert 1 <= s.prefetch <= 8 and plan.c_slots >= 2
