"""``mvin col=`` (a slot inside scratchpad or accumulator rows) and ``mvin acc=1`` (C elements
into accumulator rows), plain and transposed, on the generated accelerator in Amaranth's
simulator: random programs that mix them with the other instructions, and observe what they
moved (accumulator rows moved out, slot rows computed on), leave the reference machine's DRAM
bit for bit in exactly the cycles the cycle model predicts; without the fields the reference
DRAM differs, so the comparison sees them."""

from __future__ import annotations

import random

import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing, move_cycles
from hw.front.arch import ArchSpec
from hw.front.isa import Instruction, assemble, encode
from hw.front.isa_machine import Machine
from sim.accel_pysim import run_accel_pysim
from tests.hw.accel_cases import DRAM_BYTES, _rows, random_move_program, tiny_arch

ARCHS = {v: tiny_arch(v) for v in ("int8", "int4", "uint8", "slow")}


def _reference(arch: ArchSpec, program: list[Instruction], dram: bytes) -> bytes:
    machine = Machine(arch, len(dram))
    machine.write_dram(0, dram)
    machine.run(program)
    return machine.dram.tobytes()


def _check(arch: ArchSpec, program: list[Instruction], dram: bytes) -> bytes:
    """Run ``program`` on the RTL: the reference DRAM, the model's cycles (walking every
    instruction or skipping periods alike); that DRAM."""
    expected = _reference(arch, program, dram)
    run = run_accel_pysim(arch, [encode(i) for i in program], dram, max_cycles=50_000)
    assert run.dram == expected
    params = accel_params(arch)
    assert run.cycles == accel_timing(program, params).cycles \
        == accel_timing(program, params, skip_periods=False).cycles
    return expected


def _case(variant: str, seed: int, length: int = 36):
    arch = ARCHS[variant]
    rnd = random.Random(7919 * seed + len(variant))
    program = random_move_program(arch, rnd, length)
    return arch, program, bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))


@pytest.mark.parametrize("variant,seed", [(v, s) for v in ARCHS for s in range(3)])
def test_random_slot_and_accumulator_moves_bit_exact_and_cycle_exact(variant, seed):
    _check(*_case(variant, seed))


@pytest.mark.parametrize("variant", list(ARCHS))
def test_the_random_programs_see_the_fields(variant):
    """Without ``col=`` (each slot move at element 0) or without the ``acc=1`` moves, the
    random programs leave a different reference DRAM: the comparison above sees both."""
    arch, program, dram = _case(variant, 0)
    expected = _reference(arch, program, dram)
    at_zero = [Instruction("mvin", tuple((n, 0 if n == "col" else v) for n, v in i.fields))
               if i.op == "mvin" else i for i in program]
    assert _reference(arch, at_zero, dram) != expected
    no_acc = [i for i in program if not (i.op == "mvin" and i["acc"])]
    assert _reference(arch, no_acc, dram) != expected


@pytest.mark.parametrize("variant", ["int8", "int4"])
def test_directed_slots_and_accumulator_rows(variant):
    """Every kind of move once, each observed, the fields mattering: a slot written into
    rows already loaded (plain and transposed), accumulator rows loaded (plain, transposed,
    at a slot) and added to by a tile, then moved out."""
    arch = ARCHS[variant]
    acc_elems = _rows(arch)[3]
    row = acc_elems * arch.types[2].bits // 8
    program = assemble(f"""
        config dataflow=ws
        mvin dram=0 stride=4 sp=0 rows=8 cols=4
        mvin dram=64 stride=4 sp=1 rows=3 cols=2 col=2
        mvin dram=96 stride=8 sp=4 rows=4 cols=3 col=1 transpose=1
        mvin dram=256 stride={row + 4} sp=8 rows=4 cols={acc_elems} acc=1
        mvin dram=512 stride=20 sp=12 rows=4 cols=2 col=1 acc=1 transpose=1
        mvin dram=640 stride={row} sp=8 rows=2 cols=1 col={acc_elems - 1} acc=1
        compute a=0 b=4 c=8 i=4 j=4 k=4 accumulate=1
        mvout acc=8 dram=2048 stride={row} rows=8 cols={acc_elems}
        """, arch)
    rnd = random.Random(5)
    dram = bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))
    expected = _check(arch, program, dram)
    for n, ins in enumerate(program):       # each slot at element 0, each acc=1 move left out
        if ins.op == "mvin" and (ins["col"] or ins["acc"]):
            changed = [Instruction("mvin", tuple((f, 0 if f == "col" else v)
                                                 for f, v in ins.fields))] \
                if ins["col"] and not ins["acc"] else []
            assert _reference(arch, [*program[:n], *changed, *program[n + 1:]],
                              dram) != expected


def test_accumulator_move_cycles():
    """An ``mvin acc=1`` takes a row's beats per row (transposed: one beat per element), done
    L + 1 cycles after its last request; ``col=`` changes no timing."""
    arch = ARCHS["uint8"]                # int32 C, 32-byte rows: 8 beats of 4 bytes
    p = accel_params(arch)

    def mvin(**f):
        return assemble("mvin dram=0 stride=64 sp=0 " + " ".join(f"{k}={v}"
                                                                 for k, v in f.items()), arch)[0]
    assert move_cycles(p, mvin(rows=3, cols=8, acc=1)) == (24, 23 + 8)
    assert move_cycles(p, mvin(rows=3, cols=3, col=5, acc=1)) == (9, 8 + 8)
    assert move_cycles(p, mvin(rows=3, cols=2, acc=1, transpose=1)) == (6, 5 + 8)
    assert move_cycles(p, mvin(rows=3, cols=2, col=1)) == move_cycles(p, mvin(rows=3, cols=2))


def test_accumulator_moves_hold_and_are_held():
    """An ``mvin acc=1`` (issued in 2, requesting from 3: 2 rows x 8 beats, done in
    3 + 15 + L + 1 = 26) holds an mvout or a tile on its rows until 27; it waits for a tile
    writing its rows as an mvout does; it never waits for an earlier mvout (the DMA reads
    those rows first)."""
    arch = ARCHS["uint8"]
    p = accel_params(arch)

    def issue(text: str) -> tuple[int, ...]:
        return accel_timing(assemble("config dataflow=ws\n" + text, arch), p).issue[1:]

    load = "mvin dram=0 stride=64 sp=4 rows=2 cols=8 acc=1\n"
    assert issue(load + "mvout acc=5 dram=2048 stride=32 rows=1 cols=8") == (2, 27)
    assert issue(load + "mvout acc=6 dram=2048 stride=32 rows=1 cols=8") == (2, 3)
    assert issue(load + "compute a=0 b=0 c=5 i=1 j=4 k=4 accumulate=1") == (2, 27)
    tile = "compute a=0 b=0 c=5 i=3 j=4 k=4 accumulate=1\n"
    assert issue(tile + load) == issue(tile + "mvout acc=4 dram=2048 stride=32 rows=2 "
                                       "cols=8") == (2, 12)
    assert issue("mvout acc=4 dram=2048 stride=32 rows=2 cols=8\n" + load) == (2, 3)
