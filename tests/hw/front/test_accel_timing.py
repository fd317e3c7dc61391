"""The accelerator's cycle model on cases worked by hand from its documented rules (the RTL
is held equal to it on random programs in tests/sim/test_accel_pysim.py)."""

import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing, compute_rows, move_cycles
from hw.front.isa import Instruction
from tests.hw.accel_cases import tiny_arch

P = accel_params(tiny_arch("int8"))         # E = 4, W = 4 bytes, L = 3, int32 results


def _config(flow: int) -> Instruction:
    return Instruction("config", (("dataflow", flow),))


def _compute(i, j, k, a=0, b=100, c=0, acc=0) -> Instruction:
    return Instruction("compute", (("a", a), ("b", b), ("c", c), ("i", i), ("j", j),
                                   ("k", k), ("accumulate", acc)))


def _mvin(rows, cols, sp=0, transpose=0) -> Instruction:
    return Instruction("mvin", (("dram", 0), ("stride", 8), ("sp", sp), ("rows", rows),
                                ("cols", cols), ("transpose", transpose)))


def _mvout(rows, cols, acc=0, transpose=0) -> Instruction:
    return Instruction("mvout", (("acc", acc), ("dram", 0), ("stride", 64), ("rows", rows),
                                 ("cols", cols), ("transpose", transpose)))


def test_one_plain_mvin():
    # issue 1, requests from 2 (2 rows), last data registered in 2 + 1 + L + 1 = 7, leaves
    # the queue in 8
    assert accel_timing([_mvin(2, 4)], P).cycles == 9


def test_output_stationary_tile_drains_after_streaming():
    # config 1; compute issues 2, queued 3, promoted 3, streams 4..7, idle 8, drains 9..10,
    # last write 11: idle from 12
    t = accel_timing([_config(0), _compute(2, 3, 4)], P)
    assert (t.issue, t.cycles) == ((1, 2), 12)


def test_weight_stationary_tile_loads_then_streams():
    # queued 3, loads 4 rows 3..6, streams 3 rows 7..9, writes until 11: idle from 12
    assert accel_timing([_config(1), _compute(3, 2, 4)], P).cycles == 12


def test_back_to_back_tiles_overlap_the_next_load():
    one = accel_timing([_config(1), _compute(8, 4, 4)], P).cycles
    two = accel_timing([_config(1), _compute(8, 4, 4), _compute(8, 4, 4, c=8)], P).cycles
    assert two - one == 8           # the second load hides under the first tile's 8 rows


def test_compute_waits_for_its_operands_and_mvin_for_readers():
    program = [_config(1), _mvin(4, 4, sp=100), _compute(3, 4, 4, a=0, b=100)]
    t = accel_timing(program, P)
    # the mvin (issue 2) is done in 3 + 3 + 3 + 1 = 10: the compute issues in 11
    assert t.issue[2] == 11 and t.stalls["compute_waits_move"] == 8
    reader = [_config(1), _compute(3, 4, 4, a=0, b=100), _mvin(4, 4, sp=100)]
    t = accel_timing(reader, P)
    # the tile reads B while loading (3..6) and A while streaming (7..9): mvin from 10
    assert t.issue[2] == 10


def test_mvout_waits_for_the_tile_writing_its_rows():
    t = accel_timing([_config(1), _compute(3, 4, 4), _mvout(3, 4)], P)
    # the tile streams 7..9, writes until 11: the mvout issues in 12
    assert t.issue[2] == 12
    t = accel_timing([_config(1), _compute(3, 4, 4), _mvout(3, 4, acc=10)], P)
    assert t.issue[2] == 3          # other rows: no wait


@pytest.mark.parametrize("ins,expected", [
    (_mvin(6, 4), (6, 5 + 3 + 1)),
    (_mvin(6, 2, transpose=1), (4 + 2, 4 + 2 + 4 + 2 - 1)),         # blocks of 4 and 2 rows
    (_mvout(3, 4), (1 + 3 * 4, 12)),                                 # 16-byte rows: 4 beats
    (_mvout(6, 2, transpose=1), (4 + 1 + 2 * 4 + 2 + 1 + 2 * 2, 19)),
])
def test_move_cycles(ins, expected):
    assert move_cycles(P, ins) == expected


def test_compute_rows_by_class():
    assert compute_rows("k", 2, 3, 4) == {"A": 4, "B": 4, "C": 2, "x": 4, "s": 0}
    assert compute_rows("i", 2, 3, 4) == {"A": 2, "B": 4, "C": 2, "x": 2, "s": 4}
    assert compute_rows("j", 2, 3, 4) == {"A": 2, "B": 3, "C": 3, "x": 3, "s": 2}


def test_fence_waits_for_everything():
    t = accel_timing([_mvin(2, 4), Instruction("fence"), _mvin(1, 4, sp=50)], P)
    # first mvin leaves the queue in 8: the fence issues in 9
    assert t.issue == (1, 9, 10)


@pytest.mark.parametrize("arch_name", ["gemmini_like", "lego_fused"])
def test_skipping_repeated_periods_is_exact(arch_name):
    """Long kernel programs repeat; the model adds whole periods at once, with the result of
    walking every instruction (issue cycles, cycles, busy counts, stalls by cause)."""
    from hw.front.arch import load_arch
    from hw.front.kernel_runs import conv_operands, gemm_operands
    from hw.front.kernels import conv2d_program, gemm_program

    arch = load_arch(f"examples/arch/{arch_name}.yaml")
    params = accel_params(arch)
    programs = [gemm_program(arch, d.name, gemm_operands(arch, *shape))
                for d in arch.dataflows
                for shape in ((256, 300, 512), (33, 512, 1024, True), (1, 2048, 640, False, True))]
    programs.append(conv2d_program(arch, arch.dataflows[0].name,
                                   conv_operands(arch, 16, 10, 12, 32, 3, 3)))
    for program in programs:
        assert accel_timing(program, params) == accel_timing(program, params,
                                                             skip_periods=False)
