"""The generated accelerator's activation quantizer in Amaranth's simulator: float32 rows moved
into the accumulator (``mvin acc=1``), ``quantizer groups`` (signed and unsigned, scales placed
from a ``count`` offset, wrapping into the next scale row) and ``quantizer rows`` (a partial
last block), then every code (times an identity) and every scale row moved out: the DRAM equals
the reference machine's, bit for bit (the elements of the scale rows a command leaves alone
included), in the cycles the model predicts. On the "units" architecture (a beat a block,
Ea = Es = lanes = 4) and on one with the quantizer alone, 2 lanes and 8-element accumulator
rows (four beats a block, a block's codes in two scratchpad rows, two beats a row each)."""

import numpy as np
import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec, arch_from_dict
from hw.front.isa import UNIT_MODES, UNIT_NAMES, Instruction, check_program, encode
from hw.front.isa_machine import Machine, pack
from sim.accel_pysim import run_accel_pysim
from tests.hw.accel_cases import tiny_arch, tiny_arch_dict

E = 4                       # the array edge; elements of a scratchpad row
TINY = 2.0**-149
_IDENTITY, _X, _SENTINEL, _OUT = 0, 64, 1024, 2048
_X_ROWS, _SCALE_ROW, _SCALE_ROWS, _CODE_ROWS = 25, 50, 9, 29
#: (src, rows, cols) of the three commands (signed groups, unsigned groups, rows)
_SIGNED, _UNSIGNED, _ROWS = (0, 2, 32), (0, 1, 16), (16, 3, 10)


def _wide_rows_arch() -> ArchSpec:
    d = tiny_arch_dict("int8")
    d["name"] = "tiny_quantizer"
    d["accumulator"] = {"capacity_bytes": 2048, "banks": 2, "row_bytes": 32}
    d["units"] = {"quantizer": {"lanes": 2, "group": 16}}
    return arch_from_dict(d)


def _unit(mode: str, **fields) -> Instruction:
    fields = {"unit": UNIT_NAMES.index("quantizer"), "mode": UNIT_MODES["quantizer"].index(mode),
              **fields}
    return Instruction("unit", tuple(fields.items()))


def _mv(op: str, row: int, dram: int, rows: int, cols: int, stride: int, **extra) -> Instruction:
    mem = "sp" if op == "mvin" else "acc"
    return Instruction(op, (("dram", dram), ("stride", stride), (mem, row), ("rows", rows),
                            ("cols", cols), *extra.items()))


def _program(arch: ArchSpec, ea: int) -> list[Instruction]:
    """x into accumulator rows 0..24, random scale rows 50..58; signed groups (2 rows x 32:
    two groups, count Ea - 1: the second scale wraps to the next scale row), unsigned groups
    (1 row x 16 of the same x: negatives get code 0), rows (3 rows x 10: a partial last
    block); scales and codes (scratchpad rows 16..44) moved out."""
    (s1, r1, c1), (s2, r2, c2), (s3, r3, c3) = _SIGNED, _UNSIGNED, _ROWS
    prog = [Instruction("config", (("dataflow", 1),)),          # ws: A rows over i
            _mv("mvin", 0, _IDENTITY, E, E, E),
            _mv("mvin", 0, _X, _X_ROWS, ea, 4 * ea, acc=1),
            _mv("mvin", _SCALE_ROW, _SENTINEL, _SCALE_ROWS, ea, 4 * ea, acc=1),
            _unit("groups", src=s1, dst=16, rows=r1, cols=c1, arg=50, shift=1, count=ea - 1),
            _unit("groups", src=s2, dst=32, rows=r2, cols=c2, arg=54, shift=0, count=0),
            _unit("rows", src=s3, dst=36, rows=r3, cols=c3, arg=56),
            _mv("mvout", _SCALE_ROW, _OUT, _SCALE_ROWS, ea, 4 * ea),
            Instruction("compute", (("a", 16), ("b", 0), ("c", 0), ("i", _CODE_ROWS),
                                    ("j", E), ("k", E), ("accumulate", 0))),
            _mv("mvout", 0, _OUT + _SCALE_ROWS * 4 * ea, _CODE_ROWS, E, 4 * E)]
    check_program(prog, arch)
    return prog


def _place(acc: np.ndarray, command: tuple[int, int, int], x: np.ndarray) -> None:
    """``x`` (rows x cols) into the accumulator image as the command reads it: element ``j``
    of row ``i`` at row ``src + (j // Ea) rows + i``, element ``j mod Ea``."""
    src, rows, cols = command
    ea = acc.shape[1]
    j, i = np.arange(cols), np.arange(rows)[:, None]
    acc[src + (j // ea)[None, :] * rows + i, (j % ea)[None, :]] = x


def _x(rng: np.random.Generator, ea: int) -> np.ndarray:
    """The float32 values of accumulator rows 0..24: random magnitudes, and the cases each
    command must meet: signed groups, row 0, group 1 subnormal (-10 LSBs: scale 1 LSB, code
    -8), row 1, group 1 zero; the unsigned row a positive max and negatives; rows: the largest
    magnitudes in row 0, a subnormal row 2 (-190 LSBs: code -128)."""
    acc = rng.standard_normal((_X_ROWS, ea)) * np.exp2(rng.integers(-30, 30, (_X_ROWS, 1)))
    acc[rng.random(acc.shape) < 0.05] = -0.0
    signed = rng.standard_normal((2, 32)) * 1e3
    signed[0, 16:] = rng.integers(-9, 10, 16) * TINY
    signed[0, 16] = -10 * TINY
    signed[1, 16:] = 0.0
    _place(acc, _SIGNED, signed)
    unsigned = rng.standard_normal((1, 16))
    unsigned[0, 5] = 4.0
    _place(acc, _UNSIGNED, unsigned)
    rows = rng.standard_normal((3, 10)) * 1e-3
    rows[0, :4] = [3.4028235e38, -3.4028235e38, 1.0, -2.0]
    rows[2] = rng.integers(-150, 151, 10) * TINY
    rows[2, 3] = -190 * TINY
    _place(acc, _ROWS, rows)
    return acc.astype(np.float32)


def _dram(arch: ArchSpec, ea: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    dram = bytearray(4096)
    dram[_IDENTITY:_IDENTITY + E * E] = pack(np.eye(E, dtype=np.int64), arch.types[0])
    x = _x(rng, ea)
    dram[_X:_X + x.size * 4] = x.tobytes()
    sentinel = rng.integers(-(1 << 31), 1 << 31, _SCALE_ROWS * ea)
    dram[_SENTINEL:_SENTINEL + sentinel.size * 4] = pack(sentinel, arch.types[2])
    return bytes(dram)


@pytest.mark.parametrize("variant", ["units", "wide_rows"])
def test_quantizer_on_the_rtl(variant):
    arch = tiny_arch("units") if variant == "units" else _wide_rows_arch()
    ea = accel_params(arch).acc_elems
    assert ea == (4 if variant == "units" else 8)
    prog, dram = _program(arch, ea), _dram(arch, ea, 0)
    machine = Machine(arch, len(dram))
    machine.write_dram(0, dram)
    machine.run(prog)
    run = run_accel_pysim(arch, [encode(i) for i in prog], dram, max_cycles=20_000)
    assert run.dram == machine.dram.tobytes()
    assert run.cycles == accel_timing(prog, accel_params(arch)).cycles
    at = _OUT + _SCALE_ROWS * 4 * ea
    codes = np.frombuffer(run.dram[at:at + _CODE_ROWS * 16], np.int32).reshape(_CODE_ROWS, E)
    assert codes[:16].min() == -8 and codes[16:20].min() == 0 and codes[20:].min() == -128
    assert (codes[:16] == 7).any() and (codes[16:20] == 15).any()
    scales = np.frombuffer(run.dram[_OUT:at], np.float32).reshape(_SCALE_ROWS, ea)
    assert 1.0 in scales[:4] and (scales[:4] < 2.0**-126).any()   # zero, subnormal groups
