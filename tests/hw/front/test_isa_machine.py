"""The reference machine computes the golden GEMM for every dataflow of both architectures,
with the tile layout the instruction set defines; its element encodings round-trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.int_gemm import int_gemm
from golden.int_types import int_type
from hw.front.arch import GEMM_DIMS, load_arch
from hw.front.isa import TENSOR_DIMS, Instruction, ProgramError, tile_layout
from hw.front.isa_machine import Machine, pack, unpack
from hw.front.spec_model import SpecError

ARCHS = {n: load_arch(f"examples/arch/{n}.yaml") for n in ("gemmini_like", "lego_fused")}
CASES = [(n, d.name) for n, a in ARCHS.items() for d in a.dataflows]


def _ins(op, **fields):
    return Instruction(op, tuple(fields.items()))


def _image(arch, dataflow, tensor, matrix):
    """``matrix`` (in the tensor's axis order) as memory rows: transposed when its rows run
    over its second dim."""
    row_dim, _ = tile_layout(arch, dataflow, tensor)
    return matrix.T if row_dim != TENSOR_DIMS[tensor][0] else matrix


def _run_tile(arch, dataflow, tile, a, b, b2):
    """Load A, B; compute; load B2; accumulate; store C. Returns C as the machine wrote it."""
    t8, t32 = arch.types[0], arch.types[2]
    machine = Machine(arch, 1 << 16)
    images = {"A": _image(arch, dataflow, "A", a), "B": _image(arch, dataflow, "B", b),
              "B2": _image(arch, dataflow, "B", b2)}
    program, sp = [_ins("config", dataflow=[d.name for d in arch.dataflows].index(dataflow))], 0
    rows_at = {}
    for n, (name, img) in enumerate(images.items()):
        machine.write_dram(0x1000 * (n + 1), pack(img, t8))
        program.append(_ins("mvin", dram=0x1000 * (n + 1), stride=img.shape[1] * t8.bits // 8,
                            sp=sp, rows=img.shape[0], cols=img.shape[1]))
        rows_at[name] = sp
        sp += img.shape[0]
    i, j, k = tile
    program.append(_ins("compute", a=rows_at["A"], b=rows_at["B"], c=3, i=i, j=j, k=k,
                        accumulate=0))
    program.append(_ins("compute", a=rows_at["A"], b=rows_at["B2"], c=3, i=i, j=j, k=k,
                        accumulate=1))
    c_rows, c_cols = _image(arch, dataflow, "C", np.zeros((i, j))).shape
    program += [_ins("fence"), _ins("mvout", acc=3, dram=0x8000, stride=c_cols * 4,
                                    rows=c_rows, cols=c_cols)]
    machine.run(program)
    out = unpack(machine.read_dram(0x8000, c_rows * c_cols * 4), c_rows * c_cols, t32)
    out = out.reshape(c_rows, c_cols)
    return out.T if tile_layout(arch, dataflow, "C")[0] != TENSOR_DIMS["C"][0] else out


@st.composite
def tiles(draw, arch, dataflow):
    spatial = arch.spatial_extents(dataflow)
    return tuple(draw(st.integers(1, e if e else 40)) for e in spatial)


@pytest.mark.parametrize("arch_name, dataflow", CASES)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_tile_equals_golden(arch_name, dataflow, data):
    arch = ARCHS[arch_name]
    i, j, k = data.draw(tiles(arch, dataflow))
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (i, k))
    b, b2 = rng.integers(-128, 128, (k, j)), rng.integers(-128, 128, (k, j))
    expected = int_gemm(a, b, "int8", "int8", 32) + int_gemm(a, b2, "int8", "int8", 32)
    np.testing.assert_array_equal(_run_tile(arch, dataflow, (i, j, k), a, b, b2), expected)


def test_accumulator_wraps_like_hardware():
    arch = ARCHS["gemmini_like"]
    machine = Machine(arch, 4096)
    machine.accumulator[0, 0] = 2**31 - 1
    machine.scratchpad[0, 0] = machine.scratchpad[1, 0] = 1
    machine.run([_ins("config", dataflow=0),
                 _ins("compute", a=0, b=1, c=0, i=1, j=1, k=1, accumulate=1)])
    assert machine.accumulator[0, 0] == -2**31


@pytest.mark.parametrize("name", ["int4", "uint4", "int8", "uint8", "int16", "int32"])
def test_pack_round_trip(name):
    t = int_type(name)
    values = np.random.default_rng(0).integers(t.min, t.max + 1, 37)
    data = pack(values, t)
    assert len(data) == (37 * t.bits + 7) // 8
    np.testing.assert_array_equal(unpack(data, 37, t), values)
    with pytest.raises(ValueError, match=f"outside {name}"):
        pack(np.array([t.max + 1]), t)


def test_errors():
    arch = ARCHS["gemmini_like"]
    machine = Machine(arch, 256)
    with pytest.raises(ProgramError, match=r"instruction 1 \(mvin\): bytes 0x100..0x110 are "
                                           r"outside the machine's 256-byte DRAM"):
        machine.run([_ins("mvin", dram=256, stride=16, sp=0, rows=1, cols=16)])
    with pytest.raises(ProgramError, match="compute before any config"):
        machine.run([_ins("compute", a=0, b=0, c=0, i=1, j=1, k=1, accumulate=0)])
    with pytest.raises(ValueError, match="dram_bytes must be a positive integer"):
        Machine(arch, 0)
    from dataclasses import replace

    mixed = replace(arch, types=(int_type("int8"), int_type("uint8"), int_type("int32")))
    with pytest.raises(SpecError, match="A and B in one scratchpad type"):
        Machine(mixed, 16)
    assert GEMM_DIMS == ("i", "j", "k")
