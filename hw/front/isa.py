"""The accelerator's instruction set: instructions, their 128-bit encoding, an assembler and a
disassembler, and the checks that keep a program inside an architecture.

Six instructions (one per line in assembly; fields ``name=value``, decimal or ``0x`` hex;
``#`` starts a comment)::

    config   dataflow=NAME                         # the dataflow later computes run
    mvin     dram=ADDR stride=BYTES sp=ROW rows=N cols=N [transpose=0|1] [relu=0|1]
             # N rows of N A/B elements from DRAM (row r at ADDR + r*STRIDE) to scratchpad
             # rows ROW.. (the elements of a row are contiguous in DRAM); relu=1 writes
             # max(x, 0) (an architecture with units: operand_relu); col=C writes elements
             # C.. of each row (a KV cache slot inside a row); acc=1 moves C elements into
             # accumulator rows SP.. instead (scales, as float32 bit patterns)
    mvout    acc=ROW dram=ADDR stride=BYTES rows=N cols=N [transpose=0|1]
             # N accumulator rows of N C elements to DRAM, row r at ADDR + r*STRIDE
             # transpose=1 (either move): memory row r, element c <-> DRAM row c (at
             # ADDR + c*STRIDE), element r (the DMA transposes in array-edge-square blocks;
             # a move may span many)
    compute  a=ROW b=ROW c=ROW i=N j=N k=N accumulate=0|1
             # one GEMM tile of extents (i, j, k): operands from scratchpad rows A.., B..,
             # results into accumulator rows C.. (added to them with accumulate=1)
    fence    # wait until every earlier instruction has finished
    unit     unit=NAME mode=NAME [src=ROW] [dst=ROW] rows=N [cols=N] [arg=N] [shift=N]
             [count=N] [kv=N]
             # N accumulator rows from SRC through a workload unit of the architecture
             # (UNIT_MODES: requant absmax|operand|wide|slices|rows, softmax
             # weights|max|scaled,
             # normalizer divide, dequant clear|exponent|term|output,
             # quantizer groups|rows, kv_cache reset|advance), results
             # to rows DST.. (at or below SRC where they overlap; semantics:
             # hw.front.isa_units; the generated RTL executes RTL_UNIT_MODES of
             # hw.front.accel_params, the reference machine all)

How a compute's tile lies in the memories (:func:`tile_layout`): each of A (i, k), B (k, j)
and C (i, j) takes one memory row per index of its *row dim* and holds the other dim's
elements from the row's start. The row dim is the tensor's dim the dataflow maps to time only
(its extent is a run-time choice, so it runs down the rows); a tensor whose two dims are both
on the array (it stays in the FUs) takes its first dim. Output-stationary thus keeps A as
A^T (rows over k), weight-stationary keeps A as is (rows over i), and input-stationary leaves
C as C^T (rows over j).

An encoded instruction is one 128-bit word: the opcode in bits 0-3, then the fields in the
order above, each at its fixed width (:data:`FIELDS`). :func:`check_program` rejects what the
hardware must never see: a scratchpad or accumulator range past the memory, a row of more
elements than a memory row holds, a tile beyond the array under its dataflow, a compute before
any config, a DRAM range past the 32-bit address space; every error names the instruction (its
line) and the offending value. A compute's operand and result rows are checked at their first
row; the whole ranges once the accelerator fixes how a tile is laid out in its memories.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .arch import GEMM_DIMS, ArchSpec
from .spec_model import SpecError, close_hint

__all__ = ["FIELDS", "OPCODES", "OPTIONAL", "SHIFT_FROM_REGISTER", "TENSOR_DIMS", "UNIT_MODES",
           "UNIT_NAMES", "Instruction", "ProgramError",
           "assemble", "check_program", "decode", "disassemble", "encode", "layout_from_extents",
           "range_check", "relocate",
           "tile_layout"]

WORD_BITS = 128
DRAM_BITS = 32

#: opcode -> its number and its fields ``(name, bits)`` in encoding order.
FIELDS: dict[str, tuple[tuple[str, int], ...]] = {
    "config": (("dataflow", 4),),
    "mvin": (("dram", DRAM_BITS), ("stride", 24), ("sp", 20), ("rows", 12), ("cols", 12),
             ("transpose", 1), ("relu", 1), ("col", 12), ("acc", 1)),
    "mvout": (("acc", 20), ("dram", DRAM_BITS), ("stride", 24), ("rows", 12), ("cols", 12),
              ("transpose", 1)),
    "compute": (("a", 20), ("b", 20), ("c", 20), ("i", 16), ("j", 16), ("k", 16),
                ("accumulate", 1)),
    "fence": (),
    "unit": (("unit", 3), ("mode", 4), ("src", 20), ("dst", 20), ("rows", 12), ("cols", 12),
             ("arg", 32), ("shift", 8), ("count", 4), ("kv", 5)),
}
OPCODES = {name: n for n, name in enumerate(FIELDS)}
#: fields that may be left out (assembly, :class:`Instruction`), with their value then.
OPTIONAL = {("mvin", "transpose"): 0, ("mvout", "transpose"): 0, ("mvin", "relu"): 0,
            ("mvin", "col"): 0, ("mvin", "acc"): 0,
            ("unit", "src"): 0, ("unit", "dst"): 0, ("unit", "cols"): 1, ("unit", "arg"): 0,
            ("unit", "shift"): 0, ("unit", "count"): 1, ("unit", "kv"): 0}
#: workload-unit commands: unit -> its modes (the ``unit`` and ``mode`` fields index these;
#: semantics in :mod:`hw.front.isa_units`). A unit without modes has no commands yet.
UNIT_MODES: dict[str, tuple[str, ...]] = {
    "requant": ("absmax", "operand", "wide", "slices", "rows"),
    "softmax": ("weights", "max", "scaled"),
    "normalizer": ("divide",),
    "dequant": ("clear", "exponent", "term", "output"),
    "quantizer": ("groups", "rows"),
    "kv_cache": ("reset", "advance"),
}
UNIT_NAMES = tuple(UNIT_MODES)
#: a unit command's ``shift=255``: the shift is the requantizer's power-of-two register.
SHIFT_FROM_REGISTER = 255
_OP_BITS = 4


class ProgramError(SpecError):
    """A program the assembler or the checks reject (the message names line and value)."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: ``op`` and its fields (all of them, as non-negative integers; the
    dataflow by its index in the architecture). Valid on construction: known opcode, exactly
    its fields, each within its width."""

    op: str
    fields: tuple[tuple[str, int], ...] = ()
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in FIELDS:
            raise ProgramError(f"unknown opcode {self.op!r} (opcodes: {', '.join(FIELDS)})"
                               f"{close_hint(self.op, list(FIELDS))}")
        names = [n for n, _ in FIELDS[self.op]]
        present = {n for n, _ in self.fields}
        for (op, name), value in OPTIONAL.items():
            if op == self.op and name not in present:
                object.__setattr__(self, "fields", (*self.fields, (name, value)))
        given = [n for n, _ in self.fields]
        if sorted(given) != sorted(names):
            raise ProgramError(f"{self.op} takes fields {', '.join(names) or '(none)'}, got "
                               f"{', '.join(given) or '(none)'}")
        width = dict(FIELDS[self.op])
        for name, value in self.fields:
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value < 1 << width[name]:
                raise ProgramError(f"{self.op} {name}={value!r} does not fit its "
                                   f"{width[name]}-bit field (0..{(1 << width[name]) - 1})")
        object.__setattr__(self, "fields", tuple(sorted(self.fields,
                                                        key=lambda f: names.index(f[0]))))
        object.__setattr__(self, "_by_name", dict(self.fields))

    def __getitem__(self, name: str) -> int:
        return self._by_name[name]


def encode(ins: Instruction) -> int:
    """The 128-bit word of ``ins``: opcode in bits 0-3, then its fields in order."""
    word, pos = OPCODES[ins.op], _OP_BITS
    for (_, width), (_, value) in zip(FIELDS[ins.op], ins.fields, strict=True):
        word |= value << pos
        pos += width
    return word


def decode(word: int) -> Instruction:
    """The instruction of a 128-bit word; ProgramError for an unknown opcode or stray bits."""
    if not isinstance(word, int) or not 0 <= word < 1 << WORD_BITS:
        raise ProgramError(f"an instruction word is a {WORD_BITS}-bit integer, got {word!r}")
    code = word & ((1 << _OP_BITS) - 1)
    names = list(FIELDS)
    if code >= len(names):
        raise ProgramError(f"unknown opcode {code} in word {word:#x}")
    op, pos, fields = names[code], _OP_BITS, []
    for name, width in FIELDS[op]:
        fields.append((name, (word >> pos) & ((1 << width) - 1)))
        pos += width
    if word >> pos:
        raise ProgramError(f"word {word:#x}: bits above {op}'s fields are set")
    return Instruction(op, tuple(fields))


def _value(text: str, where: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ProgramError(f"{where}: {text!r} is not an integer") from None


def _assemble_line(line: str, n: int, arch: ArchSpec) -> Instruction | None:
    code = line.split("#", 1)[0].split()
    if not code:
        return None
    op, where = code[0].lower(), f"line {n}"
    if op not in FIELDS:
        raise ProgramError(f"{where}: unknown opcode {op!r}{close_hint(op, list(FIELDS))}")
    fields = {}
    for part in code[1:]:
        name, eq, text = part.partition("=")
        if not eq:
            raise ProgramError(f"{where}: expected name=value, got {part!r}")
        if name in fields:
            raise ProgramError(f"{where}: field {name!r} given twice")
        if op == "config" and name == "dataflow":
            names = [d.name for d in arch.dataflows]
            if text not in names:
                raise ProgramError(f"{where}: architecture {arch.name!r} has no dataflow "
                                   f"{text!r} (dataflows: {', '.join(names)})"
                                   f"{close_hint(text, names)}")
            fields[name] = names.index(text)
        elif op == "unit" and name in ("unit", "mode") and not text.isdigit():
            fields[name] = _unit_name(text, name, fields, where)
        else:
            fields[name] = _value(text, f"{where} {name}")
    try:
        return Instruction(op, tuple(fields.items()))
    except ProgramError as exc:
        raise ProgramError(f"{where}: {exc}") from None


def _unit_name(text: str, name: str, fields: dict[str, int], where: str) -> int:
    """The index of a unit name (``unit=``) or of a mode name of the unit given before it."""
    if name == "unit":
        names = list(UNIT_NAMES)
    elif "unit" in fields and fields["unit"] < len(UNIT_NAMES):
        names = list(UNIT_MODES[UNIT_NAMES[fields["unit"]]])
    else:
        raise ProgramError(f"{where}: give unit= before a mode name")
    if text not in names:
        raise ProgramError(f"{where}: unknown {name} {text!r} ({name}s: "
                           f"{', '.join(names) or '(none)'}){close_hint(text, names)}")
    return names.index(text)


def assemble(text: str, arch: ArchSpec) -> list[Instruction]:
    """The checked program of an assembly ``text`` for ``arch`` (see the module docstring)."""
    program = [ins for n, line in enumerate(text.splitlines(), 1)
               if (ins := _assemble_line(line, n, arch)) is not None]
    check_program(program, arch)
    return program


def disassemble(program: list[Instruction], arch: ArchSpec) -> str:
    """Assembly text of ``program`` (dataflows by name); ``assemble`` reads it back."""
    lines = []
    for ins in program:
        parts = [ins.op]
        for name, value in ins.fields:
            if OPTIONAL.get((ins.op, name)) == value:
                continue
            shown = (arch.dataflows[value].name if ins.op == "config" else
                     _unit_label(ins, name, value) if ins.op == "unit" else str(value))
            parts.append(f"{name}={shown}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def _unit_label(ins: Instruction, name: str, value: int) -> str:
    """A unit command's field as assembly shows it: unit and mode by name where known."""
    if name == "unit" and value < len(UNIT_NAMES):
        return UNIT_NAMES[value]
    modes = UNIT_MODES[UNIT_NAMES[ins["unit"]]] if ins["unit"] < len(UNIT_NAMES) else ()
    return modes[value] if name == "mode" and value < len(modes) else str(value)


def check_program(program: list[Instruction], arch: ArchSpec) -> None:
    """Raise :class:`ProgramError` at the first instruction ``arch`` cannot run safely."""
    a, b, c = arch.types
    sp_rows = arch.scratchpad.rows
    acc_rows = arch.accumulator.rows
    sp_elems = arch.scratchpad.row_bytes * 8 // max(a.bits, b.bits)
    acc_elems = arch.accumulator.row_bytes * 8 // c.bits
    spatial = {d.name: arch.spatial_extents(d.name) for d in arch.dataflows}
    dataflow = None
    for n, ins in enumerate(program, 1):
        where = f"instruction {n} ({ins.op})"
        if ins.op == "config":
            if ins["dataflow"] >= len(arch.dataflows):
                raise ProgramError(f"{where}: dataflow {ins['dataflow']} does not exist "
                                   f"(architecture {arch.name!r} has {len(arch.dataflows)})")
            dataflow = arch.dataflows[ins["dataflow"]].name
        elif ins.op in ("mvin", "mvout"):
            to_acc = ins.op == "mvout" or ins["acc"]
            row, rows_total, elems, width = (
                ("acc" if ins.op == "mvout" else "sp", acc_rows, acc_elems, c.bits) if to_acc
                else ("sp", sp_rows, sp_elems, max(a.bits, b.bits)))
            range_check(where, row, ins[row], ins["rows"], rows_total)
            first = ins["col"] if ins.op == "mvin" else 0
            if not 1 <= ins["cols"] or first + ins["cols"] > elems:
                start = f" from element col={first}" if first else ""
                raise ProgramError(f"{where}: cols={ins['cols']}{start}, a row holds "
                                   f"1..{elems - first}")
            lines, per_line = ((ins["cols"], ins["rows"]) if ins["transpose"]
                               else (ins["rows"], ins["cols"]))
            end = ins["dram"] + (lines - 1) * ins["stride"] + (per_line * width + 7) // 8
            if end > 1 << DRAM_BITS:
                raise ProgramError(f"{where}: DRAM range ends at {end:#x}, past the "
                                   f"{DRAM_BITS}-bit address space")
            if ins.op == "mvin" and ins["relu"] and ins["acc"]:
                raise ProgramError(f"{where}: relu=1 applies to operands, not to acc=1 moves")
            if ins.op == "mvin" and ins["relu"] and not arch.units.operand_relu:
                raise ProgramError(f"{where}: relu=1, but architecture {arch.name!r} has no "
                                   "operand ReLU (units: operand_relu)")
        elif ins.op == "compute":
            if dataflow is None:
                raise ProgramError(f"{where}: compute before any config (no dataflow chosen)")
            _check_tile(where, ins, dataflow, spatial[dataflow], sp_rows, acc_rows)
        elif ins.op == "unit":
            from .isa_unit_checks import check_unit

            check_unit(where, ins, arch, sp_rows, acc_rows)


def range_check(where: str, name: str, start: int, rows: int, total: int) -> None:
    """ProgramError unless rows ``start .. start + rows - 1`` (``rows >= 1``) lie in a memory
    of ``total`` rows; the message names the field ``name``."""
    if rows < 1 or start + rows > total:
        raise ProgramError(f"{where}: {name}={start} rows={rows} reaches row "
                           f"{start + rows - 1}, past the memory's {total} rows")


#: the GEMM dims (indices into i, j, k) of each tensor's two axes.
TENSOR_DIMS = {"A": (0, 2), "B": (2, 1), "C": (0, 1)}


def tile_layout(arch: ArchSpec, dataflow: str, tensor: str) -> tuple[int, int]:
    """(row dim, column dim), as indices into (i, j, k), of ``tensor`` ("A", "B" or "C") of a
    tile under ``dataflow``: rows over the dim the dataflow maps to time only, else over the
    tensor's first dim (see the module docstring)."""
    return layout_from_extents(arch.spatial_extents(dataflow), tensor)


def layout_from_extents(spatial: tuple[int, ...], tensor: str) -> tuple[int, int]:
    """:func:`tile_layout` from the dataflow's spatial extents (``ArchSpec.spatial_extents``:
    for callers that lay out many tiles)."""
    p, q = TENSOR_DIMS[tensor]
    return (q, p) if spatial[p] and not spatial[q] else (p, q)


def _check_tile(where: str, ins: Instruction, dataflow: str, spatial: tuple[int, ...],
                sp_rows: int, acc_rows: int) -> None:
    tile = tuple(ins[d] for d in GEMM_DIMS)
    if min(tile) < 1:
        raise ProgramError(f"{where}: tile extents must be >= 1, got "
                           f"{dict(zip(GEMM_DIMS, tile, strict=True))}")
    for dim, extent, most in zip(GEMM_DIMS, tile, spatial, strict=True):
        if most and extent > most:
            raise ProgramError(f"{where}: {dim}={extent} exceeds the array ({most}) under "
                               f"dataflow {dataflow!r}")
    for tensor, total, what in (("A", sp_rows, "scratchpad"), ("B", sp_rows, "scratchpad"),
                                ("C", acc_rows, "accumulator")):
        row_dim, _ = layout_from_extents(spatial, tensor)
        name = tensor.lower()
        if ins[name] + tile[row_dim] > total:
            raise ProgramError(f"{where}: {name}={ins[name]} with {tile[row_dim]} rows "
                               f"({GEMM_DIMS[row_dim]}) reaches row "
                               f"{ins[name] + tile[row_dim] - 1}, past the {what}'s {total} "
                               f"rows")


def relocate(program: Sequence[Instruction], offset: int) -> list[Instruction]:
    """``program`` over a DRAM image placed ``offset`` bytes further: every DRAM address (the
    ``dram`` field of ``mvin`` and ``mvout``, the only ones) moved by ``offset``.
    ``ProgramError`` when an address leaves its field; ``ValueError`` for a negative
    ``offset``."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    return [Instruction(ins.op, tuple((n, v + offset if n == "dram" else v)
                                      for n, v in ins.fields))
            if ins.op in ("mvin", "mvout") else ins for ins in program]
