"""Small architectures and random programs for the accelerator's tests: every architecture
the generator supports in miniature (int8, int4 with a 16-bit accumulator and 1-cycle DRAM,
uint8 with wide accumulator rows, int8 behind a slow DRAM), and checked programs that stress
the dispatcher's hazards (random rows of one small scratchpad and accumulator, so moves and
tiles overlap often)."""

from __future__ import annotations

import random

from hw.front.arch import ArchSpec, arch_from_dict
from hw.front.isa import Instruction, check_program, tile_layout

DRAM_BYTES = 4096


def tiny_arch(variant: str = "int8") -> ArchSpec:
    """A 4x4 architecture with all four dataflow classes (see the module docstring); the
    variants "int8", "int4", "uint8", "slow" (40-cycle DRAM) and "units" (int8 with every
    workload unit, 4 lanes)."""
    return arch_from_dict(tiny_arch_dict(variant))


def tiny_arch_dict(variant: str = "int8") -> dict:
    """:func:`tiny_arch` as the mapping its YAML file holds."""
    d = {"name": f"tiny_{variant}", "array": [4, 4],
         "types": {"A": "int8", "B": "int8", "C": "int32"},
         "dataflows": [{"name": "os", "space": ["i", "j"], "time": "i + j + k"},
                       {"name": "ws", "space": ["k", "j"], "time": "i + j + k"},
                       {"name": "is_", "space": ["i", "k"], "time": "i + j + k"},
                       {"name": "sr", "space": ["k", "j"], "time": "i"}],
         "scratchpad": {"capacity_bytes": 1024, "banks": 4, "row_bytes": 4},
         "accumulator": {"capacity_bytes": 1024, "banks": 2, "row_bytes": 16},
         "dram": {"bytes_per_cycle": 4, "latency_cycles": 3}, "clock_mhz": 100}
    if variant == "int4":
        d["types"] = {"A": "int4", "B": "int4", "C": "int16"}
        d["accumulator"] = {"capacity_bytes": 1024, "banks": 2, "row_bytes": 8}
        d["dram"]["latency_cycles"] = 1
    elif variant == "uint8":
        d["types"] = {"A": "uint8", "B": "uint8", "C": "int32"}
        d["accumulator"] = {"capacity_bytes": 2048, "banks": 2, "row_bytes": 32}
        d["dram"]["latency_cycles"] = 7
    elif variant == "slow":         # the DMA queue fills up behind long DRAM latency
        d["dram"]["latency_cycles"] = 40
    elif variant == "units":        # int8 with every workload unit, one accumulator row wide
        d["units"] = {"operand_relu": True, "requant": {"lanes": 4},
                      "softmax": {"lanes": 4}, "normalizer": {"lanes": 4},
                      "dequant": {"lanes": 4, "group": 16, "dot_bits": 22, "rows": 4},
                      "quantizer": {"lanes": 4, "group": 16},
                      "kv_cache": {"descriptors": 2}}
    elif variant != "int8":
        raise ValueError(f"unknown variant {variant!r}")
    return d


def _rows(arch: ArchSpec) -> tuple[int, int, int, int]:
    sp, acc = arch.scratchpad, arch.accumulator
    a_bits, c_bits = arch.types[0].bits, arch.types[2].bits
    return (sp.banks * sp.rows_per_bank, acc.banks * acc.rows_per_bank,
            sp.row_bytes * 8 // a_bits, acc.row_bytes * 8 // c_bits)


def _move(rnd: random.Random, arch: ArchSpec, op: str) -> Instruction:
    sp_rows, acc_rows, sp_elems, acc_elems = _rows(arch)
    bits = arch.types[0 if op == "mvin" else 2].bits
    rows = rnd.randint(1, 12 if op == "mvin" else 8)
    cols = rnd.randint(1, sp_elems if op == "mvin" else acc_elems)
    transpose = rnd.random() < 0.3
    lines, per_line = (cols, rows) if transpose else (rows, cols)
    nbytes = (per_line * bits + 7) // 8
    stride = rnd.randint(nbytes, nbytes + 8)
    span = (lines - 1) * stride + nbytes
    # inputs in the lower half of DRAM, outputs in the upper half
    base = 0 if op == "mvin" else DRAM_BYTES // 2
    dram = base + rnd.randrange(DRAM_BYTES // 2 - span)
    mem, total = ("sp", sp_rows) if op == "mvin" else ("acc", acc_rows)
    return Instruction(op, (("dram", dram), ("stride", stride), (mem, rnd.randrange(total - rows)),
                            ("rows", rows), ("cols", cols), ("transpose", int(transpose))))


def _compute(rnd: random.Random, arch: ArchSpec, flow: str) -> Instruction:
    sp_rows, acc_rows, _, _ = _rows(arch)
    tile = [rnd.randint(1, s) if s else rnd.randint(1, 10) for s in arch.spatial_extents(flow)]
    rows = {}
    for t, total in (("A", sp_rows), ("B", sp_rows), ("C", acc_rows)):
        rows[t.lower()] = rnd.randrange(total - tile[tile_layout(arch, flow, t)[0]])
    return Instruction("compute", (*rows.items(), ("i", tile[0]), ("j", tile[1]),
                                   ("k", tile[2]), ("accumulate", int(rnd.random() < 0.5))))


def random_program(arch: ArchSpec, rnd: random.Random, length: int) -> list[Instruction]:
    """A checked program of ``length`` random instructions after a config."""
    flow = rnd.randrange(len(arch.dataflows))
    program = [Instruction("config", (("dataflow", flow),))]
    for _ in range(length):
        r = rnd.random()
        if r < 0.05:
            flow = rnd.randrange(len(arch.dataflows))
            program.append(Instruction("config", (("dataflow", flow),)))
        elif r < 0.08:
            program.append(Instruction("fence"))
        elif r < 0.45:
            program.append(_move(rnd, arch, "mvin"))
        elif r < 0.8:
            program.append(_compute(rnd, arch, arch.dataflows[flow].name))
        else:
            program.append(_move(rnd, arch, "mvout"))
    check_program(program, arch)
    return program


#: accumulator rows the unit programs keep for normalizer denominators (never overwritten)
DEN_ROWS = 8


def random_unit_program(arch: ArchSpec, rnd: random.Random, length: int
                        ) -> list[Instruction]:
    """A checked program for an architecture with the requant and normalizer units: random
    moves (a third of the mvins with relu=1), tiles, and the unit commands the RTL executes
    (requant absmax / operand / wide / slices, normalizer divide), often back to back. The
    last :data:`DEN_ROWS` accumulator rows hold non-negative products of ReLU'd operands,
    computed first and only read after: the normalizer's denominators; the rows below them start
as products of signed operands. A normalizer's
    numerators may still leave its input range (the reference machine then refuses the
    program: draw another)."""
    from hw.front.isa import SHIFT_FROM_REGISTER

    sp_rows, acc_rows, sp_elems, acc_elems = _rows(arch)
    den = acc_rows - DEN_ROWS
    edge = arch.array[0]
    flow = 1                                            # ws: A rows over i, C rows over i
    program = [Instruction("config", (("dataflow", flow),)),
               Instruction("mvin", (("dram", 0), ("stride", sp_elems), ("sp", 0),
                                    ("rows", edge), ("cols", sp_elems), ("relu", 1)))]
    for r in range(0, DEN_ROWS, edge):
        program.append(Instruction("compute", (("a", 0), ("b", 0), ("c", den + r),
                                               ("i", min(edge, DEN_ROWS - r)), ("j", edge),
                                               ("k", edge), ("accumulate", 0))))
    # every other accumulator row a product of signed operands: the units' sources
    program.append(Instruction("mvin", (("dram", DRAM_BYTES // 4), ("stride", sp_elems),
                                        ("sp", edge), ("rows", 2 * edge),
                                        ("cols", sp_elems))))
    for r in range(0, den, edge):
        program.append(Instruction("compute", (("a", edge + r % 5), ("b", edge), ("c", r),
                                               ("i", min(edge, den - r)), ("j", edge),
                                               ("k", edge), ("accumulate", 0))))
    while len(program) < length:
        r = rnd.random()
        if r < 0.25:
            ins = _move(rnd, arch, "mvin")
            if rnd.random() < 0.33:
                ins = Instruction("mvin", tuple({**dict(ins.fields), "relu": 1}.items()))
        elif r < 0.45:
            ins = _compute(rnd, arch, arch.dataflows[flow].name)
            if ins["c"] + ins["i"] > den:
                continue
        elif r < 0.55:
            ins = _move(rnd, arch, "mvout")
        else:
            ins = _unit(rnd, arch, den, SHIFT_FROM_REGISTER)
            program.append(ins)
            if rnd.random() < 0.8:
                program += _observe(rnd, arch, ins, den)
            continue
        program.append(ins)
    check_program(program, arch)
    return program


def _mvout(rnd: random.Random, row: int, rows: int, cols: int, c_bytes: int) -> Instruction:
    stride = cols * c_bytes
    dram = DRAM_BYTES // 2 + rnd.randrange(DRAM_BYTES // 2 - rows * stride)
    return Instruction("mvout", (("acc", row), ("dram", dram), ("stride", stride),
                                 ("rows", rows), ("cols", cols)))


def _observe(rnd: random.Random, arch: ArchSpec, ins: Instruction, den: int
             ) -> list[Instruction]:
    """Instructions that carry a unit command's result to DRAM: its accumulator rows moved
    out, or its scratchpad rows multiplied (as A, rows over i) by the ReLU'd rows 0.. and the
    product moved out."""
    c_bytes = arch.types[2].bits // 8
    rows, cols, dst = ins["rows"], ins["cols"], ins["dst"]
    if (ins["unit"], ins["mode"]) in ((0, 2), (2, 0)):          # requant wide, normalizer
        return [_mvout(rnd, dst, rows, cols, c_bytes)]
    if (ins["unit"], ins["mode"]) not in ((0, 1), (0, 3)):      # absmax: seen by operand
        return []
    edge = arch.array[0]
    i, k = min(rows, edge), min(cols, edge)
    c = rnd.randrange(den - i)
    return [Instruction("compute", (("a", dst), ("b", 0), ("c", c), ("i", i), ("j", edge),
                                    ("k", k), ("accumulate", 0))),
            _mvout(rnd, c, i, edge, c_bytes)]


def _unit(rnd: random.Random, arch: ArchSpec, den: int, from_register: int) -> Instruction:
    sp_rows, acc_rows, sp_elems, acc_elems = _rows(arch)
    rows = rnd.randint(1, 6)
    mode = rnd.choice(["absmax", "operand", "wide", "slices", "divide"])
    shift = from_register if rnd.random() < 0.3 else rnd.choice([0, 1, 5, 13, 40, 70, 200])
    fields = {"src": rnd.randrange(acc_rows - rows), "rows": rows}
    if mode == "divide":
        fields.update(unit=2, mode=0, dst=rnd.randrange(den - rows), cols=
                      rnd.randint(1, acc_elems), arg=den + rnd.randrange(DEN_ROWS - rows + 1),
                      shift=rnd.choice([from_register, 0, 3, 9]), count=rnd.randint(1, 3))
    else:
        to_sp = mode in ("operand", "slices")
        fields.update(unit=0, mode=["absmax", "operand", "wide", "slices"].index(mode),
                      dst=rnd.randrange((sp_rows if to_sp else den) - rows),
                      cols=rnd.randint(1, min(sp_elems, acc_elems) if to_sp else acc_elems),
                      arg=rnd.choice([0, 1, 3, 255, 40000, 65535]) if mode != "absmax"
                      else rnd.randint(0, 1), shift=shift)
    if mode in ("wide", "divide"):          # written rows overlap read rows only below
        for name in ("src", "arg") if mode == "divide" else ("src",):
            if fields[name] < fields["dst"] < fields[name] + rows:
                fields["dst"] = fields[name]
    return Instruction("unit", tuple(fields.items()))


def _slot_mvin(rnd: random.Random, arch: ArchSpec, to_acc: bool) -> Instruction:
    """A random ``mvin`` into elements ``col .. col+cols-1`` of scratchpad rows or (``to_acc``)
    accumulator rows, a third of them transposed, from the lower half of DRAM."""
    sp_rows, acc_rows, sp_elems, acc_elems = _rows(arch)
    total, elems, bits = ((acc_rows, acc_elems, arch.types[2].bits) if to_acc
                          else (sp_rows, sp_elems, arch.types[0].bits))
    rows = rnd.randint(1, 9)
    col = rnd.randrange(elems) if rnd.random() < 0.8 else 0
    cols = rnd.randint(1, elems - col)
    transpose = int(rnd.random() < 0.35)
    lines, per_line = (cols, rows) if transpose else (rows, cols)
    nbytes = (per_line * bits + 7) // 8
    stride = rnd.randint(nbytes, nbytes + 6)
    dram = rnd.randrange(DRAM_BYTES // 2 - (lines - 1) * stride - nbytes)
    return Instruction("mvin", (("dram", dram), ("stride", stride),
                                ("sp", rnd.randrange(total - rows + 1)), ("rows", rows),
                                ("cols", cols), ("transpose", transpose), ("col", col),
                                ("acc", int(to_acc))))


def _whole_rows_out(rnd: random.Random, arch: ArchSpec, row: int, rows: int) -> Instruction:
    """Accumulator rows ``row .. row+rows-1``, whole, to the upper half of DRAM."""
    acc_elems = _rows(arch)[3]
    stride = acc_elems * arch.types[2].bits // 8
    dram = DRAM_BYTES // 2 + rnd.randrange(DRAM_BYTES // 2 - rows * stride)
    return Instruction("mvout", (("acc", row), ("dram", dram), ("stride", stride),
                                 ("rows", rows), ("cols", acc_elems)))


def _observe_move(rnd: random.Random, arch: ArchSpec, flow: str, ins: Instruction
                  ) -> list[Instruction]:
    """Instructions that carry what the mvin ``ins`` moved to DRAM: its accumulator rows
    moved out, or a tile reading its scratchpad rows as A whose C rows are moved out."""
    if ins["acc"]:
        return [_whole_rows_out(rnd, arch, ins["sp"], ins["rows"])]
    tile = _compute(rnd, arch, flow)
    extent = [tile["i"], tile["j"], tile["k"]]
    a_rows, c_rows = (extent[tile_layout(arch, flow, t)[0]] for t in ("A", "C"))
    a = min(ins["sp"], _rows(arch)[0] - a_rows)
    tile = Instruction("compute", tuple((n, a if n == "a" else v) for n, v in tile.fields))
    return [tile, _whole_rows_out(rnd, arch, tile["c"], c_rows)]


def random_move_program(arch: ArchSpec, rnd: random.Random, length: int
                        ) -> list[Instruction]:
    """A checked program of about ``length`` instructions after a config: ``mvin col=``
    (scratchpad or accumulator slots) and ``mvin acc=1`` moves, plain and transposed, most
    followed by instructions observing them, among plain moves, tiles, configs and fences."""
    names = [d.name for d in arch.dataflows]
    flow = rnd.randrange(len(names))
    program = [Instruction("config", (("dataflow", flow),))]
    while len(program) <= length:
        r = rnd.random()
        if r < 0.04:
            flow = rnd.randrange(len(names))
            program.append(Instruction("config", (("dataflow", flow),)))
        elif r < 0.07:
            program.append(Instruction("fence"))
        elif r < 0.42:
            ins = _slot_mvin(rnd, arch, to_acc=rnd.random() < 0.5)
            program.append(ins)
            if rnd.random() < 0.7:
                program += _observe_move(rnd, arch, names[flow], ins)
        elif r < 0.57:
            program.append(_move(rnd, arch, "mvin"))
        elif r < 0.85:
            program.append(_compute(rnd, arch, names[flow]))
        else:
            program.append(_move(rnd, arch, "mvout"))
    check_program(program, arch)
    return program
