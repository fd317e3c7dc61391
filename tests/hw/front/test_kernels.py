"""The kernel library: every GEMM program it emits passes the program checks and computes
golden's GEMM on the reference machine, for every dataflow of both architectures, any
extents (1 included) and transposed operands."""

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
    conv2d_cost,
    conv2d_program,
    gemm_cost,
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
    assert (i, j) == (16, 16) and 2 * k <= half < 4 * k     # A^T and B rows: k each


def test_bad_operands():
    with pytest.raises(ValueError, match="GEMM extent m must be a positive integer, got 0"):
        GemmOperands(0, 1, 1, 0, 0, 0)
    with pytest.raises(ValueError, match="a_addr must be a byte address >= 0, got -1"):
        GemmOperands(1, 1, 1, -1, 0, 0)


def test_cost_of_a_gemm():
    """256^3 on 16x16: every MAC once; operands read once per output tile they feed
    (A: N/16 times, B: M/16 times under output-stationary), C written once; the roofline."""
    arch = ARCHS["gemmini_like"]
    ops = GemmOperands(256, 256, 256, 0, 1 << 20, 1 << 21)
    cost = program_cost(gemm_program(arch, "output_stationary", ops), arch)
    assert cost.macs == cost.padded_macs == 256**3
    assert cost.dram_read_bytes == 2 * 256 * 256 * 16      # A and B, 16 times each
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
    assert gemm_cost(arch, dataflow, ops, tile) == \
        program_cost(gemm_program(arch, dataflow, ops, tile), arch)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=10, deadline=None)
@given(c=st.integers(1, 20), k=st.integers(1, 20), h=st.integers(1, 9), w=st.integers(1, 9),
       r=st.integers(1, 3), s=st.integers(1, 3))
def test_closed_form_conv_cost(arch_name, dataflow, c, k, h, w, r, s):
    arch = ARCHS[arch_name]
    ops = ConvOperands(c, h, w, k, min(r, h), min(s, w), 0, 1 << 16, 1 << 17)
    assert conv2d_cost(arch, dataflow, ops) == \
        program_cost(conv2d_program(arch, dataflow, ops), arch)
