"""The checks of a workload-unit command (``unit unit=... mode=...``) that
:func:`hw.front.isa.check_program` applies: a unit the architecture has and one of its modes,
rows inside the memories, the fields' ranges (:mod:`hw.front.isa_units` has the semantics
each check protects).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from .arch import ArchSpec
from .isa import (
    SHIFT_FROM_REGISTER,
    UNIT_MODES,
    UNIT_NAMES,
    Instruction,
    ProgramError,
    range_check,
)

__all__ = ["check_unit"]


def check_unit(where: str, ins: Instruction, arch: ArchSpec, sp_rows: int,
               acc_rows: int) -> None:
    """A unit command names a present unit and one of its modes, and stays in the memories
    (:mod:`hw.front.isa_units` has the semantics each check protects)."""
    if ins["unit"] >= len(UNIT_NAMES):
        raise ProgramError(f"{where}: unit {ins['unit']} does not exist (units: "
                           f"{', '.join(UNIT_NAMES)})")
    unit = UNIT_NAMES[ins["unit"]]
    if getattr(arch.units, unit) is None:
        raise ProgramError(f"{where}: architecture {arch.name!r} has no {unit} unit "
                           f"(present: {', '.join(arch.units.present()) or 'none'})")
    modes = UNIT_MODES[unit]
    if ins["mode"] >= len(modes):
        raise ProgramError(f"{where}: the {unit} unit has no mode {ins['mode']} (modes: "
                           f"{', '.join(modes) or 'none yet'})")
    mode = modes[ins["mode"]]
    a_bits, c_bits = arch.types[0].bits, arch.types[2].bits
    acc_elems = arch.accumulator.row_bytes * 8 // c_bits
    sp_elems = arch.scratchpad.row_bytes * 8 // a_bits
    if unit in ("softmax", "kv_cache"):
        if arch.units.kv_cache is None or ins["kv"] >= arch.units.kv_cache.descriptors:
            have = arch.units.kv_cache.descriptors if arch.units.kv_cache else 0
            raise ProgramError(f"{where}: KV descriptor kv={ins['kv']}, the architecture "
                               f"has {have}")
    if unit == "kv_cache":
        return
    if unit == "softmax":           # key blocks of whole rows, one row per query each
        blocks = -(-ins["cols"] // acc_elems), -(-ins["cols"] // sp_elems)
        range_check(where, "src", ins["src"], ins["rows"] * blocks[0], acc_rows)
        if mode != "max":
            range_check(where, "dst", ins["dst"], ins["rows"] * blocks[1], sp_rows)
        range_check(where, "arg", ins["arg"], ins["rows"], acc_rows)
        if mode == "scaled" and acc_elems < 2:
            raise ProgramError(f"{where}: softmax scaled writes the row sum to element 1, "
                               "an accumulator row holds 1")
        return
    if unit == "quantizer":
        _check_quantizer(where, ins, mode, arch, (sp_rows, acc_rows), (sp_elems, acc_elems))
        return
    if unit == "dequant":
        if ins["rows"] > arch.units.dequant.rows:
            raise ProgramError(f"{where}: rows={ins['rows']}, the dequantizer holds "
                               f"{arch.units.dequant.rows} (units.dequant.rows)")
        _check_dequant(where, ins, mode, acc_rows, acc_elems)
        return
    to_sp = (unit, mode) in (("requant", "operand"), ("requant", "slices"), ("requant", "rows"))
    tiles = ins["count"] if mode == "rows" else 1
    range_check(where, "src", ins["src"], ins["rows"] * tiles, acc_rows)
    if mode != "absmax":
        range_check(where, "dst", ins["dst"], ins["rows"] * tiles, sp_rows if to_sp else acc_rows)
    if mode == "rows":
        range_check(where, "arg", ins["arg"], ins["rows"], acc_rows)
    most = min(sp_elems, acc_elems) if to_sp else acc_elems
    if not 1 <= ins["cols"] <= most:
        raise ProgramError(f"{where}: cols={ins['cols']}, a row holds 1..{most}")
    if unit == "requant" and ins["arg"] >> arch.units.requant.mult_bits and \
            mode in ("operand", "wide"):
        raise ProgramError(f"{where}: multiplier arg={ins['arg']} exceeds the requantizer's "
                           f"{arch.units.requant.mult_bits} bits")
    if not to_sp and mode not in ("absmax", "rows"):
        _check_in_place(where, ins, ("src", "arg") if unit == "normalizer" else ("src",))
    if unit == "normalizer":
        if arch.units.requant is None and ins["shift"] == SHIFT_FROM_REGISTER:
            raise ProgramError(f"{where}: shift={SHIFT_FROM_REGISTER} reads the requantizer's "
                               "register, but the architecture has no requant unit")
        if not 1 <= ins["count"] <= -(-c_bits // (a_bits - 1)):
            raise ProgramError(f"{where}: count={ins['count']} denominator slices, the "
                               f"normalizer combines 1..{-(-c_bits // (a_bits - 1))}")
        range_check(where, "arg", ins["arg"], ins["rows"], acc_rows)


def _check_in_place(where: str, ins: Instruction, reads: tuple[str, ...]) -> None:
    """A unit streams rows in order, writing row ``t`` after reading row ``t + 1``: the rows
    it writes may overlap the rows it reads only at or below them (``dst <= src``)."""
    for name in reads:
        if ins["dst"] > ins[name] and ins["dst"] < ins[name] + ins["rows"]:
            raise ProgramError(f"{where}: dst={ins['dst']} overwrites rows {name}="
                               f"{ins[name]}..{ins[name] + ins['rows'] - 1} still to be read; "
                               f"put dst at or below {name}, or past its rows")


def _check_dequant(where: str, ins: Instruction, mode: str, acc_rows: int,
                   acc_elems: int) -> None:
    """Rows and elements of a dequant command stay in the accumulator."""
    if not 1 <= ins["cols"] <= acc_elems:
        raise ProgramError(f"{where}: cols={ins['cols']}, a row holds 1..{acc_elems}")
    if mode == "clear" and ins["shift"] & 1:
        range_check(where, "arg", ins["arg"], ins["rows"], acc_rows)
    elif mode in ("exponent", "term"):
        range_check(where, "src", ins["src"], ins["rows"], acc_rows)
        range_check(where, "dst", ins["dst"], 1, acc_rows)
        range_check(where, "arg", ins["arg"], ins["rows"], acc_rows)
        if ins["count"] >= acc_elems:
            raise ProgramError(f"{where}: count={ins['count']} names element {ins['count']} of "
                               f"a row scale, a row holds {acc_elems}")
    elif mode == "output":
        range_check(where, "dst", ins["dst"], ins["rows"], acc_rows)


def _check_quantizer(where: str, ins: Instruction, mode: str, arch: ArchSpec,
                     rows_total: tuple[int, int], elems: tuple[int, int]) -> None:
    """A quantizer command's types, shape and rows (scratchpad / accumulator ``rows_total``
    and ``elems`` per row): float32 in C, codes in A, whole groups, scale rows in the
    accumulator and apart from the source rows the unit is still reading."""
    (sp_rows, acc_rows), (sp_elems, acc_elems) = rows_total, elems
    a, _, c = arch.types
    if c.bits != 32:
        raise ProgramError(f"{where}: the quantizer reads float32 patterns from accumulator "
                           f"elements; the C type is {c} ({c.bits} bits), it needs 32")
    signed_codes = mode == "rows" or ins["shift"] & 1
    most = 16 if mode == "rows" else a.bits
    if not 8 <= a.bits <= most or (signed_codes and not a.signed):
        need = "a signed type of 8..16 bits" if mode == "rows" else \
            ("a signed type of >= 8 bits" if signed_codes else ">= 8 bits")
        raise ProgramError(f"{where}: quantizer {mode} writes its codes as A operands; the A "
                           f"type is {a}, it needs {need}")
    rows, cols = ins["rows"], ins["cols"]
    if cols < 1:
        raise ProgramError(f"{where}: cols={cols}, the quantizer takes 1..4095 elements a row")
    span = 1
    if mode == "groups":
        group = arch.units.quantizer.group
        if group % acc_elems:
            raise ProgramError(f"{where}: quantizer groups needs units.quantizer.group = {group}"
                               f" to be a multiple of an accumulator row's {acc_elems} elements")
        if cols % group:
            raise ProgramError(f"{where}: cols={cols} is not a multiple of the quantizer's "
                               f"group of {group} elements")
        if ins["shift"] > 1:
            raise ProgramError(f"{where}: shift={ins['shift']}: quantizer groups takes bit 0 "
                               "(signed codes) only")
        if ins["count"] >= acc_elems:
            raise ProgramError(f"{where}: count={ins['count']} names element {ins['count']} "
                               f"of a scale row, a row holds {acc_elems}")
        span = (ins["count"] + cols // group - 1) // acc_elems + 1
    src_rows = rows * -(-cols // acc_elems)
    range_check(where, "src", ins["src"], src_rows, acc_rows)
    range_check(where, "dst", ins["dst"], rows * -(-cols // sp_elems), sp_rows)
    range_check(where, "arg", ins["arg"], rows * span, acc_rows)
    if ins["arg"] < ins["src"] + src_rows and ins["src"] < ins["arg"] + rows * span:
        raise ProgramError(f"{where}: the scale rows arg={ins['arg']}.."
                           f"{ins['arg'] + rows * span - 1} overlap the rows src="
                           f"{ins['src']}..{ins['src'] + src_rows - 1} still to be read")
