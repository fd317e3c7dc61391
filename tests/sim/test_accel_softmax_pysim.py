"""The generated accelerator's softmax unit and KV-cache descriptors in Amaranth's simulator:
``softmax weights`` over the key slots of streaming and retrieval caches (empty, filling,
wrapped exactly at the boundary and beyond, advanced in pieces) plus a chunk of new keys
equal the reference machine's (bit-exact DRAM: every weight and row sum is moved out) in the
cycles the model predicts."""

import random

import numpy as np
import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.isa import Instruction, check_program, encode
from hw.front.isa_machine import Machine, pack
from sim.accel_pysim import run_accel_pysim
from tests.hw.accel_cases import tiny_arch

ARCH = tiny_arch("units")
E = 4                       # the array edge, elements of a scratchpad and accumulator row
_IDENTITY = 0               # DRAM: a 4x4 int8 identity, then random int8 operands
_OPERANDS = 64
_OUT = 2048


def _unit(unit: str, mode: str, **fields) -> Instruction:
    from hw.front.isa import UNIT_MODES, UNIT_NAMES

    fields = {"unit": UNIT_NAMES.index(unit), "mode": UNIT_MODES[unit].index(mode), **fields}
    return Instruction("unit", tuple(fields.items()))


def _mv(op: str, row: int, dram: int, rows: int, cols: int, stride: int) -> Instruction:
    mem = "sp" if op == "mvin" else "acc"
    return Instruction(op, (("dram", dram), ("stride", stride), (mem, row), ("rows", rows),
                            ("cols", cols)))


def softmax_program(rnd: random.Random, sink: int, recent: int, length: int, chunk: int,
                    groups: int, pieces: int) -> list[Instruction]:
    """A cache of ``sink`` + ``recent`` slots (``recent = 0``: retrieval) holding ``length``
    tokens (advanced in ``pieces`` commands), a ``chunk`` of new keys for ``groups`` query
    heads: logits (products of random operands) in their key blocks, the weights, then every
    weight (times the identity) and row sum moved out."""
    rows = chunk * groups
    slots = length if recent == 0 else sink + recent
    cols = -(-slots // E) * E + chunk
    blocks = -(-cols // E)
    prog = [Instruction("config", (("dataflow", 1),)),           # ws: rows over i
            _mv("mvin", 0, _IDENTITY, E, E, E),
            _mv("mvin", E, _OPERANDS, 4 * E, E, E),
            _unit("kv_cache", "reset", kv=1, src=sink, dst=recent, rows=1)]
    cuts = sorted(rnd.sample(range(1, length), pieces - 1)) if 1 < pieces <= length else []
    for a, b in zip([0, *cuts], [*cuts, length], strict=True):
        if b > a:
            prog.append(_unit("kv_cache", "advance", kv=1, rows=b - a))
    src, dst, arg = 8, 64, 40
    for b in range(blocks):                 # logits: block b of row i at src + b rows + i
        a = E + rnd.randrange(3 * E)
        prog.append(Instruction("compute", (("a", a), ("b", E + rnd.randrange(3 * E)),
                                            ("c", src + b * rows), ("i", rows), ("j", E),
                                            ("k", E), ("accumulate", 0))))
    prog.append(_unit("softmax", "weights", src=src, dst=dst, rows=rows, cols=cols, arg=arg,
                      kv=1))
    out = _OUT
    for b in range(-(-cols // E)):          # weights block b: scratchpad rows dst + b rows
        prog.append(Instruction("compute", (("a", dst + b * rows), ("b", 0), ("c", 0),
                                            ("i", rows), ("j", E), ("k", E),
                                            ("accumulate", 0))))
        prog.append(_mv("mvout", 0, out, rows, E, 4 * E))
        out += rows * 4 * E
    prog.append(_mv("mvout", arg, out, rows, 1, 4))
    check_program(prog, ARCH)
    return prog


def _dram(rnd: random.Random) -> bytes:
    dram = bytearray(4096)
    dram[_IDENTITY:_IDENTITY + E * E] = pack(np.eye(E, dtype=np.int64), ARCH.types[0])
    # small operands: logits of a few units (8 fraction bits), so the weights spread
    ops = np.array([rnd.randrange(-12, 13) for _ in range(4 * E * E)])
    dram[_OPERANDS:_OPERANDS + ops.size] = pack(ops, ARCH.types[0])
    return bytes(dram)


def _check(prog, dram: bytes) -> bytes:
    machine = Machine(ARCH, len(dram))
    machine.write_dram(0, dram)
    machine.run(prog)
    run = run_accel_pysim(ARCH, [encode(i) for i in prog], dram, max_cycles=50_000)
    assert run.dram == machine.dram.tobytes()
    assert run.cycles == accel_timing(prog, accel_params(ARCH)).cycles
    return run.dram


# (sink, recent, length, chunk, groups, pieces): streaming caches empty, filling, full exactly
# (length = sink + recent), wrapped once and many times; retrieval caches empty and filling
CASES = [(2, 3, 0, 2, 2, 1), (2, 3, 4, 1, 3, 2), (2, 3, 5, 2, 1, 1), (2, 3, 6, 2, 2, 3),
         (1, 4, 17, 1, 4, 4), (0, 3, 9, 3, 1, 2), (3, 2, 13, 1, 2, 1), (0, 0, 0, 2, 2, 1),
         (0, 0, 5, 1, 3, 2), (0, 0, 9, 4, 1, 3)]


@pytest.mark.parametrize("case", CASES)
def test_softmax_weights_on_the_rtl(case):
    rnd = random.Random(sum(case))
    prog = softmax_program(rnd, *case)
    out = _check(prog, _dram(rnd))
    assert any(out[_OUT:])                          # some weight is not 0


def test_the_weights_depend_on_the_cache_state():
    """The comparison could fail: the same logits over a cache advanced one token less give
    other weights (the masks move)."""
    rnd = random.Random(5)
    prog = softmax_program(rnd, 2, 3, 7, 2, 1, 1)
    dram = _dram(random.Random(1))
    advance = _unit("kv_cache", "advance", kv=1, rows=1)
    fewer = [Instruction("unit", tuple({**dict(i.fields), "rows": i["rows"] - 1}.items()))
             if i.op == "unit" and (i["unit"], i["mode"]) == (advance["unit"], advance["mode"])
             else i for i in prog]
    assert _check(prog, dram) != _check(fewer, dram)
