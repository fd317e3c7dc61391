"""The kernel library: every GEMM program it emits passes the program checks and computes
golden's GEMM on the reference machine, for every dataflow of both architectures, any
extents (1 included), transposed operands and any schedule; its closed-form costs equal the
built programs'."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.int_gemm import int_gemm
from golden.loop_nest import conv2d
from hw.front import kernel_runs
from hw.front.arch import load_arch
from hw.front.isa import check_program
from hw.front.kernel_runs import conv_operands, gemm_operands
from hw.front.kernels import (
    ConvOperands,
    GemmOperands,
    GemmSchedule,
    conv2d_cost,
    conv2d_instructions,
    conv2d_program,
    gemm_cost,
    gemm_instructions,
    gemm_program,
    gemm_tile,
)
from hw.front.program_cost import program_cost

ARCHS = {n: load_arch(f"examples/arch/{n}.yaml") for n in ("gemmini_like", "lego_fused")}
CASES = [(n, d.name) for n, a in ARCHS.items() for d in a.dataflows]


def run_gemm(arch, dataflow, a, b, a_t=False, b_t=False, tile=None):
    """The program on the reference machine; its counts (the model, without running) must
    equal what the machine counted as it ran."""
    ops = gemm_operands(arch, a.shape[0], b.shape[1], a.shape[1], a_t, b_t)
    run = kernel_runs.run_gemm(arch, dataflow, ops, a, b, tile)
    check_program(run.program, arch)
    _assert_counts_match(run, arch)
    return run.output, run.program


def _assert_counts_match(run, arch):
    cost = program_cost(run.program, arch)
    measured = {f: getattr(cost, f) for f in run.machine.counts}
    assert dict(run.machine.counts) == measured, (dict(run.machine.counts), cost)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40),
       a_t=st.booleans(), b_t=st.booleans(), seed=st.integers(0, 2**16))
def test_gemm_equals_golden(arch_name, dataflow, m, n, k, a_t, b_t, seed):
    arch = ARCHS[arch_name]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    out, _ = run_gemm(arch, dataflow, a, b, a_t, b_t)
    np.testing.assert_array_equal(out, int_gemm(a, b, "int8", "int8", 32))


@pytest.mark.parametrize("arch_name, dataflow", CASES)
def test_small_tiles_split_every_dim(arch_name, dataflow):
    """Forced small tiles: several output tiles and k chunks (accumulate), edge tiles."""
    arch = ARCHS[arch_name]
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (21, 19)), rng.integers(-128, 128, (19, 23))
    out, program = run_gemm(arch, dataflow, a, b, tile=(5, 6, 4))
    np.testing.assert_array_equal(out, int_gemm(a, b, "int8", "int8", 32))
    computes = [i for i in program if i.op == "compute"]
    assert len(computes) == 5 * 4 * 5                   # ceil(21/5) x ceil(23/6) x ceil(19/4)
    assert sum(i["accumulate"] for i in computes) == 5 * 4 * 4


def test_tiles_fill_the_array_and_fit_the_memories():
    arch = ARCHS["gemmini_like"]
    assert gemm_tile(arch, "output_stationary", (256, 256, 256)) == (16, 16, 256)
    assert gemm_tile(arch, "weight_stationary", (256, 256, 256)) == (256, 16, 16)
    i, j, k = gemm_tile(arch, "output_stationary", (4096, 4096, 100000))
    half = arch.scratchpad.banks * arch.scratchpad.rows_per_bank // 2       # 8192 rows
    assert (i, j) == (16, 16) and 2 * k <= half         # A^T and B rows: k each


def test_bad_operands():
    with pytest.raises(ValueError, match="GEMM extent m must be a positive integer, got 0"):
        GemmOperands(0, 1, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="a_addr must be a byte address >= 0, got -1"):
        GemmOperands(1, 1, 1, -1, 0, 0)


def test_cost_of_a_gemm():
    """256^3 on 16x16: every MAC once; A, B and C fit the memories, so each moves once
    (A resident, B streamed past it); the roofline."""
    arch = ARCHS["gemmini_like"]
    ops = GemmOperands(256, 256, 256, 0, 1 << 20, 1 << 21)
    cost = program_cost(gemm_program(arch, "output_stationary", ops), arch)
    assert cost.macs == cost.padded_macs == 256**3
    assert cost.dram_read_bytes == 2 * 256 * 256
    assert cost.dram_written_bytes == 256 * 256 * 4
    assert cost.roofline_cycles == max(256**3 // 256, cost.dram_bytes // 16)
    small = program_cost(gemm_program(arch, "output_stationary",
                                      GemmOperands(1, 16, 16, 0, 4096, 8192)), arch)
    assert small.macs == 256 and small.padded_macs == 16 * 16 * 16   # M = 1 padded to 16


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=6, deadline=None)
@given(c=st.integers(1, 20), k=st.integers(1, 20), h=st.integers(1, 7), w=st.integers(1, 9),
       r=st.integers(1, 3), s=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_conv2d_equals_golden(arch_name, dataflow, c, k, h, w, r, s, seed):
    r, s = min(r, h), min(s, w)
    arch = ARCHS[arch_name]
    rng = np.random.default_rng(seed)
    image, weights = rng.integers(-128, 128, (c, h, w)), rng.integers(-128, 128, (k, c, r, s))
    ops = conv_operands(arch, c, h, w, k, r, s)
    run = kernel_runs.run_conv(arch, dataflow, ops, image, weights)
    np.testing.assert_array_equal(run.output, conv2d(image, weights))
    _assert_counts_match(run, arch)
    size = run.output.size
    assert program_cost(run.program, arch).macs == size * c * r * s


def test_bad_convolutions():
    with pytest.raises(ValueError, match="a 3x3 kernel does not fit a 2x5 image"):
        ConvOperands(1, 2, 5, 1, 3, 3, 0, 0, 0)
    with pytest.raises(ValueError, match="convolution channels must be a positive integer"):
        ConvOperands(0, 2, 5, 1, 1, 1, 0, 0, 0)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 70), a_t=st.booleans(),
       b_t=st.booleans(), small=st.booleans())
def test_closed_form_gemm_cost(arch_name, dataflow, m, n, k, a_t, b_t, small):
    """gemm_cost equals counting the built program, with default and forced small tiles."""
    arch = ARCHS[arch_name]
    ops = GemmOperands(m, n, k, 0, 1 << 16, 1 << 17, a_t, b_t)
    tile = (5, 6, 7) if small else None
    if small:
        spatial = arch.spatial_extents(dataflow)
        tile = tuple(min(t, s) if s else t for t, s in zip(tile, spatial, strict=True))
    program = gemm_program(arch, dataflow, ops, tile)
    assert gemm_cost(arch, dataflow, ops, tile) == program_cost(program, arch)
    assert gemm_instructions(arch, dataflow, ops, tile) == len(program)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=10, deadline=None)
@given(c=st.integers(1, 20), k=st.integers(1, 20), h=st.integers(1, 9), w=st.integers(1, 9),
       r=st.integers(1, 3), s=st.integers(1, 3))
def test_closed_form_conv_cost(arch_name, dataflow, c, k, h, w, r, s):
    arch = ARCHS[arch_name]
    ops = ConvOperands(c, h, w, k, min(r, h), min(s, w), 0, 1 << 16, 1 << 17)
    program = conv2d_program(arch, dataflow, ops)
    assert conv2d_cost(arch, dataflow, ops) == program_cost(program, arch)
    assert conv2d_instructions(arch, dataflow, ops) == len(program)


def schedules(arch, dataflow, extents, pairs=1):
    """Hypothesis schedules for ``extents``: any tile the array allows, blocks and k steps of
    1..3 tiles, either operand resident, prefetch 1..4, one or two resident buffers."""
    spatial = arch.spatial_extents(dataflow)
    tile = st.tuples(*(st.integers(1, min(s, e + 2) if s else e + 2)
                       for s, e in zip(spatial, extents, strict=True)))

    @st.composite
    def build(draw):
        t = draw(tile)
        ks = t[2] * draw(st.integers(1, 3))
        block = (t[0] * draw(st.integers(1, 3)), t[1] * draw(st.integers(1, 3)),
                 ks * draw(st.integers(1, 3)))
        return GemmSchedule(t, block, ks, draw(st.sampled_from("AB")), draw(st.integers(1, 4)),
                            draw(st.integers(1, 2)))
    return build()


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), m=st.integers(1, 30), n=st.integers(1, 30), k=st.integers(1, 30),
       a_t=st.booleans(), b_t=st.booleans())
def test_any_schedule_equals_golden(arch_name, dataflow, data, m, n, k, a_t, b_t):
    """Edge blocks and tiles, k split over blocks (C kept over them), each operand resident,
    one or two resident buffers, any prefetch: golden's GEMM, the machine's counts equal the
    model's, and the closed forms equal the built program's."""
    arch = ARCHS[arch_name]
    schedule = data.draw(schedules(arch, dataflow, (m, n, k)))
    rng = np.random.default_rng(m * 10000 + n * 100 + k)
    a, b = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    out, program = run_gemm(arch, dataflow, a, b, a_t, b_t, tile=schedule)
    np.testing.assert_array_equal(out, int_gemm(a, b, "int8", "int8", 32))
    ops = gemm_operands(arch, m, n, k, a_t, b_t)
    assert gemm_cost(arch, dataflow, ops, schedule) == program_cost(program, arch)
    assert gemm_instructions(arch, dataflow, ops, schedule) == len(program)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=6, deadline=None)
@given(data=st.data(), c=st.integers(1, 20), k=st.integers(1, 20), h=st.integers(1, 6),
       w=st.integers(1, 8), r=st.integers(1, 3), s=st.integers(1, 3))
def test_conv2d_any_schedule_equals_golden(arch_name, dataflow, data, c, k, h, w, r, s):
    """Convolutions (the weights, A, shared by every output row) under any schedule."""
    r, s = min(r, h), min(s, w)
    arch = ARCHS[arch_name]
    ops = conv_operands(arch, c, h, w, k, r, s)
    schedule = data.draw(schedules(arch, dataflow, (k, w - s + 1, c)))
    rng = np.random.default_rng(c * 1000 + k)
    image, weights = rng.integers(-128, 128, (c, h, w)), rng.integers(-128, 128, (k, c, r, s))
    run = kernel_runs.run_conv(arch, dataflow, ops, image, weights, schedule)
    np.testing.assert_array_equal(run.output, conv2d(image, weights))
    _assert_counts_match(run, arch)
    assert conv2d_cost(arch, dataflow, ops, schedule) == program_cost(run.program, arch)
    assert conv2d_instructions(arch, dataflow, ops, schedule) == len(run.program)


def test_conv2d_weights_move_once():
    """The weights stay resident over every output row: they move in once."""
    arch = ARCHS["lego_fused"]
    ops = ConvOperands(8, 10, 12, 16, 3, 3, 0, 1 << 16, 1 << 17)
    cost = conv2d_cost(arch, "weight_stationary", ops)
    k, y, x = ops.out_shape
    taps = ops.r * ops.s
    assert cost.dram_written_bytes == k * y * x * 4
    assert cost.dram_read_bytes == taps * (k * ops.channels + y * ops.channels * x)
