"""The instruction set: encoding round trips, the assembler's text round trips, and programs
that would leave an architecture's memories or array rejected with the offending value."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.front.arch import load_arch
from hw.front.isa import (
    FIELDS,
    Instruction,
    ProgramError,
    assemble,
    decode,
    disassemble,
    encode,
    tile_layout,
)

GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
LEGO = load_arch("examples/arch/lego_fused.yaml")

PROGRAM = """\
# one 16x16x64 output-stationary tile
config dataflow=output_stationary
mvin dram=0x1000 stride=64 sp=0 rows=64 cols=16     # A^T
mvin dram=0x2000 stride=16 sp=64 rows=64 cols=16    # B
compute a=0 b=64 c=0 i=16 j=16 k=64 accumulate=0
fence
mvout acc=0 dram=0x3000 stride=64 rows=16 cols=16
"""


def test_assemble_disassemble_round_trip():
    program = assemble(PROGRAM, GEMMINI)
    assert [i.op for i in program] == ["config", "mvin", "mvin", "compute", "fence", "mvout"]
    assert program[1]["dram"] == 0x1000 and program[3]["k"] == 64
    text = disassemble(program, GEMMINI)
    assert "config dataflow=output_stationary" in text
    assert assemble(text, GEMMINI) == program
    assert [decode(encode(i)) for i in program] == program


@st.composite
def instructions(draw):
    op = draw(st.sampled_from(list(FIELDS)))
    return Instruction(op, tuple((name, draw(st.integers(0, (1 << bits) - 1)))
                                 for name, bits in FIELDS[op]))


@settings(max_examples=300, deadline=None)
@given(instructions())
def test_encoding_round_trips(ins):
    word = encode(ins)
    assert 0 <= word < 1 << 128
    assert decode(word) == ins


def test_fields_fit_one_word():
    for op, fields in FIELDS.items():
        assert 4 + sum(bits for _, bits in fields) <= 128, op


@pytest.mark.parametrize("line, message", [
    ("mvn dram=0 stride=0 sp=0 rows=1 cols=1", r"line 1: unknown opcode 'mvn'; did you mean "
                                               r"'mvin'"),
    ("mvin dram=0 sp=0 rows=1 cols=1", r"mvin takes fields dram, stride, sp, rows, cols"),
    ("mvin dram=x stride=0 sp=0 rows=1 cols=1", r"line 1 dram: 'x' is not an integer"),
    ("mvin dram=0 dram=0 stride=0 sp=0 rows=1 cols=1", r"field 'dram' given twice"),
    ("mvin dram=0 stride=0 sp=0 rows=5000 cols=1", r"rows=5000 does not fit its 12-bit field"),
    ("config dataflow=input_stationary", r"has no dataflow 'input_stationary'"),
    ("fence now", r"expected name=value, got 'now'"),
])
def test_assembler_errors(line, message):
    with pytest.raises(ProgramError, match=message):
        assemble(line, GEMMINI)


@pytest.mark.parametrize("text, message", [
    ("mvin dram=0 stride=16 sp=16380 rows=8 cols=16",
     r"instruction 1 \(mvin\): sp=16380 rows=8 reaches row 16387, past the memory's 16384"),
    ("mvin dram=0 stride=16 sp=0 rows=1 cols=17", r"cols=17, a row holds 1..16"),
    ("mvout acc=1020 dram=0 stride=64 rows=8 cols=16", r"past the memory's 1024 rows"),
    ("mvin dram=0xFFFFFFF0 stride=16 sp=0 rows=2 cols=16", r"past the 32-bit address space"),
    ("compute a=0 b=0 c=0 i=16 j=16 k=16 accumulate=0", r"compute before any config"),
    ("config dataflow=output_stationary\ncompute a=0 b=0 c=0 i=17 j=16 k=99 accumulate=0",
     r"instruction 2 \(compute\): i=17 exceeds the array \(16\) under dataflow "
     r"'output_stationary'"),
    ("config dataflow=weight_stationary\ncompute a=0 b=0 c=0 i=999 j=16 k=17 accumulate=1",
     r"k=17 exceeds the array"),
    ("config dataflow=output_stationary\ncompute a=0 b=0 c=0 i=0 j=16 k=1 accumulate=0",
     r"tile extents must be >= 1"),
    ("config dataflow=output_stationary\ncompute a=16380 b=0 c=0 i=1 j=1 k=8 accumulate=0",
     r"a=16380 with 8 rows \(k\) reaches row 16387, past the scratchpad's 16384 rows"),
    ("config dataflow=weight_stationary\ncompute a=0 b=16380 c=0 i=1 j=1 k=8 accumulate=0",
     r"b=16380 with 8 rows \(k\) reaches row 16387"),
    ("config dataflow=output_stationary\ncompute a=0 b=0 c=1020 i=5 j=1 k=1 accumulate=0",
     r"c=1020 with 5 rows \(i\) reaches row 1024, past the accumulator's 1024 rows"),
])
def test_unsafe_programs_rejected(text, message):
    with pytest.raises(ProgramError, match=message):
        assemble(text, GEMMINI)


def test_tile_layout():
    """Rows run over the dim a dataflow maps to time only; stationary tensors by their first
    dim (output-stationary keeps A as A^T, input-stationary leaves C as C^T)."""
    rows = {(d.name, x): "ijk"[tile_layout(LEGO, d.name, x)[0]]
            for d in LEGO.dataflows for x in "ABC"}
    assert rows == {
        ("output_stationary", "A"): "k", ("output_stationary", "B"): "k",
        ("output_stationary", "C"): "i",
        ("weight_stationary", "A"): "i", ("weight_stationary", "B"): "k",
        ("weight_stationary", "C"): "i",
        ("input_stationary", "A"): "i", ("input_stationary", "B"): "j",
        ("input_stationary", "C"): "j",
        ("spatial_reduction", "A"): "i", ("spatial_reduction", "B"): "k",
        ("spatial_reduction", "C"): "i"}


def test_time_dims_are_run_time():
    """Dims a dataflow maps only to time have no array limit (run-time tile extents)."""
    assemble("config dataflow=output_stationary\n"
             "compute a=0 b=0 c=0 i=16 j=16 k=4096 accumulate=1\n", GEMMINI)
    assemble("config dataflow=spatial_reduction\n"
             "compute a=0 b=0 c=0 i=1 j=16 k=16 accumulate=0\n", LEGO)


def test_decode_errors():
    with pytest.raises(ProgramError, match="unknown opcode 15"):
        decode(15)
    with pytest.raises(ProgramError, match="bits above fence's fields are set"):
        decode(encode(Instruction("fence")) | 1 << 100)
    with pytest.raises(ProgramError, match="128-bit integer"):
        decode(-1)
