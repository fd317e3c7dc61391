"""The reference semantics of the instruction set: a program run on an architecture in Python.

:class:`Machine` holds what the accelerator holds: DRAM bytes, the scratchpad's rows of A/B
elements, the accumulator's rows of C elements and the configured dataflow, and runs checked
programs (:func:`hw.front.isa.check_program`) one instruction at a time. It is the model the
kernel library's programs are proven against (they compute the golden GEMM) and the generated
accelerator's RTL is compared with.

Element encoding in DRAM: little-endian two's complement (unsigned types plain binary) of the
type's width; 4-bit elements two per byte, the first in the low nibble. A DRAM row of ``cols``
elements takes ``ceil(cols * bits / 8)`` bytes. The accumulator wraps modulo 2^bits of C's
type, as the hardware's does.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from golden.int_types import IntType

from .arch import ArchSpec
from .isa import TENSOR_DIMS, Instruction, ProgramError, check_program, tile_layout
from .isa_units import run_unit
from .spec_model import SpecError

__all__ = ["Machine", "pack", "unpack"]

_WIDTHS = (4, 8, 16, 32, 64)


def unpack(data: bytes | np.ndarray, count: int, dtype: IntType) -> np.ndarray:
    """The first ``count`` elements of type ``dtype`` in ``data``, as int64."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if dtype.bits == 4:
        nib = np.empty(raw.size * 2, dtype=np.int64)
        nib[0::2], nib[1::2] = raw & 0xF, raw >> 4
        values = nib[:count]
        return np.where(values >= 8, values - 16, values) if dtype.signed else values
    kind = "i" if dtype.signed else "u"
    return np.frombuffer(raw.tobytes()[:count * dtype.bits // 8],
                         dtype=f"<{kind}{dtype.bits // 8}").astype(np.int64)


def pack(values: np.ndarray, dtype: IntType) -> bytes:
    """``values`` (each within ``dtype``) encoded as :func:`unpack` reads them."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size and (v.min() < dtype.min or v.max() > dtype.max):
        raise ValueError(f"values outside {dtype}: {int(v.min())}..{int(v.max())}")
    if dtype.bits == 4:
        nib = (v & 0xF).astype(np.uint8)
        if nib.size % 2:
            nib = np.append(nib, np.uint8(0))
        return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
    kind = "i" if dtype.signed else "u"
    return v.astype(f"<{kind}{dtype.bits // 8}").tobytes()


def _wrap(x: np.ndarray, dtype: IntType) -> np.ndarray:
    """``x`` modulo 2^bits into ``dtype``'s range (two's complement for signed types)."""
    mod = 1 << dtype.bits
    return ((x - dtype.min) % mod) + dtype.min


class Machine:
    """An architecture's memories and state; :meth:`run` executes a program on them."""

    def __init__(self, arch: ArchSpec, dram_bytes: int) -> None:
        a, b, c = arch.types
        if a != b:
            raise SpecError(f"the reference machine keeps A and B in one scratchpad type; "
                            f"architecture {arch.name!r} has {a} and {b}")
        for t in arch.types:
            if t.bits not in _WIDTHS:
                raise SpecError(f"the reference machine handles {_WIDTHS}-bit elements, "
                                f"got {t}")
        if isinstance(dram_bytes, bool) or not isinstance(dram_bytes, int) or dram_bytes < 1:
            raise ValueError(f"dram_bytes must be a positive integer, got {dram_bytes!r}")
        self.arch = arch
        self.dram = np.zeros(dram_bytes, dtype=np.uint8)
        sp = arch.scratchpad
        acc = arch.accumulator
        self.scratchpad = np.zeros((sp.banks * sp.rows_per_bank, sp.row_bytes * 8 // a.bits),
                                   dtype=np.int64)
        self.accumulator = np.zeros((acc.banks * acc.rows_per_bank,
                                     acc.row_bytes * 8 // c.bits), dtype=np.int64)
        self.dataflow: str | None = None
        #: the workload units' registers (:mod:`hw.front.isa_units`)
        self.unit_state: dict[str, int] = {"absmax": 0, "pow2": 0}
        #: the dequant unit's per-output state between ``clear`` and ``output``
        self.dequant: dict[str, np.ndarray] | None = None
        #: the KV cache unit's descriptors: sink, recent (0: linear) and tokens written
        kv = arch.units.kv_cache.descriptors if arch.units.kv_cache else 0
        self.kv: list[dict[str, int]] = [{"sink": 0, "recent": 0, "length": 0}
                                         for _ in range(kv)]
        #: what execution moved and computed (macs, dram_read_bytes, dram_written_bytes,
        #: scratchpad/accumulator_row_reads/writes), counted as it happens
        self.counts: Counter[str] = Counter()
        #: rows streamed through each workload unit (the unit commands' work)
        self.unit_rows: Counter[str] = Counter()

    def write_dram(self, addr: int, data: bytes) -> None:
        """Host access: ``data`` into DRAM at byte ``addr``."""
        self._dram_range(addr, len(data), "write_dram")
        self.dram[addr:addr + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def read_dram(self, addr: int, size: int) -> bytes:
        """Host access: ``size`` bytes of DRAM at ``addr``."""
        self._dram_range(addr, size, "read_dram")
        return self.dram[addr:addr + size].tobytes()

    def _dram_range(self, addr: int, size: int, where: str) -> None:
        if addr < 0 or size < 0 or addr + size > self.dram.size:
            raise ProgramError(f"{where}: bytes {addr:#x}..{addr + size:#x} are outside the "
                               f"machine's {self.dram.size}-byte DRAM")

    def run(self, program: Sequence[Instruction]) -> None:
        """Check ``program`` against the architecture, then execute it in order."""
        check_program(list(program), self.arch)
        for n, ins in enumerate(program, 1):
            getattr(self, f"_{ins.op}")(ins, f"instruction {n} ({ins.op})")

    def _config(self, ins: Instruction, where: str) -> None:
        self.dataflow = self.arch.dataflows[ins["dataflow"]].name

    def _fence(self, ins: Instruction, where: str) -> None:
        """Nothing to wait for: the reference executes in order."""

    def _dram_block(self, ins: Instruction, dtype: IntType, where: str) -> np.ndarray:
        """The DRAM block a move reads: ``rows x cols`` in memory-row order."""
        lines, per_line = ((ins["cols"], ins["rows"]) if ins["transpose"]
                           else (ins["rows"], ins["cols"]))
        nbytes = (per_line * dtype.bits + 7) // 8
        block = np.empty((lines, per_line), dtype=np.int64)
        for r in range(lines):
            addr = ins["dram"] + r * ins["stride"]
            self._dram_range(addr, nbytes, where)
            block[r] = unpack(self.dram[addr:addr + nbytes], per_line, dtype)
            self.counts["dram_read_bytes"] += nbytes
        return block.T if ins["transpose"] else block

    def _mvin(self, ins: Instruction, where: str) -> None:
        memory = self.accumulator if ins["acc"] else self.scratchpad
        block = self._dram_block(ins, self.arch.types[2 if ins["acc"] else 0], where)
        if ins["relu"]:
            block = np.maximum(block, 0)
        cols = slice(ins["col"], ins["col"] + ins["cols"])
        memory[ins["sp"]:ins["sp"] + ins["rows"], cols] = block
        self.counts["accumulator_row_writes" if ins["acc"] else "scratchpad_row_writes"] += \
            block.shape[0]

    def _mvout(self, ins: Instruction, where: str) -> None:
        dtype = self.arch.types[2]
        block = self.accumulator[ins["acc"]:ins["acc"] + ins["rows"], :ins["cols"]]
        self.counts["accumulator_row_reads"] += block.shape[0]
        lines = block.T if ins["transpose"] else block
        for r, line in enumerate(lines):
            data = pack(line, dtype)
            addr = ins["dram"] + r * ins["stride"]
            self._dram_range(addr, len(data), where)
            self.dram[addr:addr + len(data)] = np.frombuffer(data, dtype=np.uint8)
            self.counts["dram_written_bytes"] += len(data)

    def _unit(self, ins: Instruction, where: str) -> None:
        run_unit(self, ins, where)

    def _tile(self, memory: np.ndarray, tensor: str, start: int, tile: tuple[int, ...]):
        """(rows slice, cols, transposed) of ``tensor``'s tile in ``memory``."""
        row_dim, col_dim = tile_layout(self.arch, self.dataflow, tensor)
        rows = slice(start, start + tile[row_dim])
        return rows, tile[col_dim], row_dim != TENSOR_DIMS[tensor][0]

    def _compute(self, ins: Instruction, where: str) -> None:
        tile = (ins["i"], ins["j"], ins["k"])
        mats = {}
        for tensor, memory, start in (("A", self.scratchpad, ins["a"]),
                                      ("B", self.scratchpad, ins["b"]),
                                      ("C", self.accumulator, ins["c"])):
            rows, cols, transposed = self._tile(memory, tensor, start, tile)
            block = memory[rows, :cols]
            mats[tensor] = (block.T if transposed else block, rows, cols, transposed)
            kind = "scratchpad" if tensor in "AB" else "accumulator"
            if tensor in "AB" or ins["accumulate"]:
                self.counts[f"{kind}_row_reads"] += block.shape[0]
        a, b = mats["A"][0], mats["B"][0]
        self.counts["macs"] += a.shape[0] * a.shape[1] * b.shape[1]
        self.counts["accumulator_row_writes"] += mats["C"][0].shape[0 if not mats["C"][3] else 1]
        product = a @ b
        total = product + (mats["C"][0] if ins["accumulate"] else 0)
        result = _wrap(total, self.arch.types[2])
        _, rows, cols, transposed = mats["C"]
        self.accumulator[rows, :cols] = result.T if transposed else result
