"""A whole SVDQuant linear layer as one accelerator program: the W4A4 residual's group dots
and the low-rank branch on the array, the branch's intermediate requantized on chip, and both
accumulated by the group dequantizer into one float32 output (:mod:`golden.svdquant_fixed`),
with nothing but operands and the output crossing DRAM.

With int4 codes ``qx`` (M x K), ``qw`` (N x K), their float32 group scales ``sx`` (M x G),
``sw`` (N x G), the branch's int8 ``xl`` (M x K) with row scales ``sxl``, ``l1q`` (K x r),
``l2q`` (r x N) with column scales ``sl2``, on a weight-stationary dataflow (A rows over i,
B rows over k, C rows over i), per block of ``Mb`` rows (at most the rows the dequantizer
holds) and per n-tile of ``E`` outputs::

    branch    u32 = xl L1q (xl and L1q streamed through a ring, k-tile by k-tile);
              requant rows: u = saturate(rsr(u32, s_m), 8), s_m per row
    per n-tile:
      clear   the dequantizer (row offsets s_m)
      exponent pass over the G groups and the low-rank term: it reads scales only (the
              low-rank term's dot decides whether it is dead: D_lr = u L2q comes first)
      per group g: D_g = qx[:, g] qw[:, g]^T into one of two dot buffers, then its term
      low-rank term; output fl32 -> mvout (overlapping the next tile's first dots)

The block's qx codes stay in the scratchpad for all its n-tiles; the weights stream: group
``g`` of the next tile's ``qw`` is moved into slot ``g`` of a ring as soon as the current
tile's dots of group ``g`` are done, so it lands while later groups compute. The weights
are stored as the array wants them (offline): ``qw`` transposed (K x N) and ``sw``
transposed (G x N). ``Mb`` is the largest block (up to the dequantizer's rows) whose
buffers fit the memories. The rank must be at most the array edge or a multiple of it; rank
0 is the plain W4A4 layer (no branch: what the branch's cost is measured against).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .arch import ArchSpec
from .isa import Instruction, check_program
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, chain_dataflow, unit_command
from .kernel_runs import ALIGN, KernelRun
from .spec_model import SpecError

__all__ = ["SVDQuantOperands", "run_svdquant_linear", "svdquant_block_rows", "svdquant_operands",
           "svdquant_program"]

_NAMES = ("qx", "qwt", "sx", "swt", "xl", "sxl", "l1q", "l2q", "sl2", "y")
#: the branch's ring of (xl, L1q) k-tiles, and how many k-tiles ahead its moves run
_RING, _AHEAD = 4, 2


@dataclass(frozen=True)
class SVDQuantOperands:
    """Shapes (M, K, N, rank r, group) and the DRAM byte address of each operand (row-major;
    codes one byte each, scales and the output 4 bytes; ``qwt`` = qw^T (K x N), ``swt`` =
    sw^T (G x N))."""

    m: int
    k: int
    n: int
    r: int
    group: int
    addr: tuple[int, ...]       #: in the order of ``_NAMES``

    def at(self, name: str) -> int:
        return self.addr[_NAMES.index(name)]

    @property
    def groups(self) -> int:
        return self.k // self.group

    @property
    def dram_bytes(self) -> int:
        return self.at("y") + self.m * self.n * 4


def svdquant_operands(arch: ArchSpec, m: int, k: int, n: int, r: int) -> SVDQuantOperands:
    """Every operand one after the other from byte ``ALIGN`` (``SpecError`` for an
    architecture without the units or a shape the kernel does not take)."""
    for unit in ("requant", "dequant"):
        if getattr(arch.units, unit) is None:
            raise SpecError(f"architecture {arch.name!r} has no {unit} unit; the SVDQuant "
                            "kernel needs requant and dequant")
    if arch.types[0].bits != 8 or arch.types[2].bits != 32:
        raise SpecError(f"the SVDQuant kernel takes int8 operands and int32 accumulators; "
                        f"architecture {arch.name!r} has {arch.types[0]} and {arch.types[2]}")
    group = arch.units.dequant.group
    for name, v in (("M", m), ("K", k), ("N", n), ("rank", r)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "rank" else 1):
            raise ValueError(f"{name} must be a positive int (rank: >= 0), got {v!r}")
    if k % group:
        raise ValueError(f"K={k} is not a multiple of the dequantizer's group {group}")
    sizes = (m * k, n * k, m * (k // group) * 4, n * (k // group) * 4, m * k, m * 4, k * r,
             r * n, n * 4)
    addr, at = [], ALIGN
    for size in sizes:
        addr.append(at)
        at += -(-size // ALIGN) * ALIGN
    return SVDQuantOperands(m, k, n, r, group, (*addr, at))


@dataclass(frozen=True)
class _Plan:
    """The loop nest of one layer: array edge ``E``, ``ea`` elements of an accumulator row,
    blocks of ``mb`` rows, the n-tiles, and the first row of every buffer (scratchpad: QX,
    QW, L2, U, RING; accumulator: D, S, U32, LR, SX, SW, SXL, SL2, Y)."""

    ops: SVDQuantOperands
    edge: int
    ea: int
    mb: int
    at: dict[str, int]

    @property
    def tiles(self) -> list[tuple[int, int]]:
        return blocks(self.ops.n, self.edge)

    @property
    def rblocks(self) -> list[tuple[int, int]]:
        return blocks(self.ops.r, self.edge)


def _buffers(ops: SVDQuantOperands, edge: int, ea: int, mb: int) -> tuple[dict, dict]:
    """Rows of every scratchpad and accumulator buffer for blocks of ``mb`` rows."""
    kt, rt, g, r = -(-ops.k // edge), -(-ops.r // edge), ops.groups, ops.r
    sp = {"QX": kt * mb, "QW": ops.k, "L2": 2 * r, "U": rt * mb,
          "RING": _RING * (mb + rt * edge) if r else 0}
    acc = {"D": 2 * mb, "S": mb, "U32": rt * mb, "LR": mb, "SX": -(-g // ea) * mb,
           "SW": 2 * g, "SXL": mb, "SL2": 2, "Y": mb}
    return sp, acc


def _plan(arch: ArchSpec, ops: SVDQuantOperands, edge: int) -> _Plan:
    """The largest block of rows (at most the dequantizer's) whose buffers fit; ``SpecError``
    when not even one row does."""
    ea = arch.accumulator.row_bytes * 8 // arch.types[2].bits
    have = arch.scratchpad.rows, arch.accumulator.rows
    for mb in range(min(ops.m, arch.units.dequant.rows), 0, -1):
        sp, acc = _buffers(ops, edge, ea, mb)
        need = sum(sp.values()), sum(acc.values())
        if need[0] <= have[0] and need[1] <= have[1]:
            at, row = {}, 0
            for sizes in (sp, acc):
                row = 0
                for name, size in sizes.items():
                    at[name], row = row, row + size
            return _Plan(ops, edge, ea, mb, at)
    raise SpecError(f"an SVDQuant layer M={ops.m} K={ops.k} N={ops.n} rank {ops.r} does not "
                    f"fit {arch.name!r}'s memories even in blocks of one row (needs "
                    f"{need[0]} of {have[0]} scratchpad rows, {need[1]} of {have[1]} "
                    "accumulator rows)")


#: instructions repeat from block to block (computes, unit commands, weight moves): one
#: object each (they are immutable), so a FLUX.1-sized program of millions fits in memory
_cached = lru_cache(maxsize=1 << 16)


@_cached
def _move(**f: int) -> Instruction:
    return Instruction("mvin", tuple(f.items()))


@_cached
def _unit(unit: str, mode: str, **f: int) -> Instruction:
    return unit_command(unit, mode, **f)


@_cached
def _compute(a: int, b: int, c: int, i: int, j: int, k: int, acc: bool) -> Instruction:
    return Instruction("compute", (("a", a), ("b", b), ("c", c), ("i", i), ("j", j), ("k", k),
                                   ("accumulate", int(acc))))


def _block_start(p: _Plan, m0: int, mb: int) -> list[Instruction]:
    """A block's qx codes and scales into the memories, and the branch's first product
    ``u32 = xl L1q`` over k-tiles streamed through the ring ``_AHEAD`` tiles ahead, then
    requantized (``u`` and the row shifts ``s_m``)."""
    ops, at, edge = p.ops, p.at, p.edge
    k, r, g = ops.k, ops.r, ops.groups
    ktiles, slot = blocks(k, edge), mb + len(p.rblocks) * edge
    prog = []
    for t in range(len(ktiles) + (_AHEAD if r else 0)):
        if t < len(ktiles):
            k0, kn = ktiles[t]
            base = at["RING"] + (t % _RING) * slot
            if r:
                prog.append(_move(dram=ops.at("xl") + m0 * k + k0, stride=k, sp=base,
                                  rows=mb, cols=kn))
                prog += [_move(dram=ops.at("l1q") + k0 * r + r0, stride=r,
                               sp=base + mb + j * edge, rows=kn, cols=rn)
                         for j, (r0, rn) in enumerate(p.rblocks)]
            prog.append(_move(dram=ops.at("qx") + m0 * k + k0, stride=k, sp=at["QX"] + t * mb,
                              rows=mb, cols=kn))
        if r and t >= _AHEAD:
            s = t - _AHEAD
            base = at["RING"] + (s % _RING) * slot
            prog += [_compute(base, base + mb + j * edge, at["U32"] + j * mb, mb, rn,
                              ktiles[s][1], s > 0) for j, (_, rn) in enumerate(p.rblocks)]
    prog += [_move(dram=ops.at("sx") + (m0 * g + g0) * 4, stride=g * 4,
                   sp=at["SX"] + t * mb, rows=mb, cols=gn, acc=1)
             for t, (g0, gn) in enumerate(blocks(g, p.ea))]
    if r:
        prog.append(_move(dram=ops.at("sxl") + m0 * 4, stride=4, sp=at["SXL"], rows=mb,
                          cols=1, acc=1))
        prog.append(_unit("requant", "rows", src=at["U32"], dst=at["U"], rows=mb,
                                 cols=p.rblocks[0][1], count=len(p.rblocks), arg=at["S"]))
    return prog


def _weights(p: _Plan, tile: int, groups: range) -> list[Instruction]:
    """The ``groups`` of n-tile ``tile``'s qw^T into their slots of the weight ring."""
    ops = p.ops
    n0, nn = p.tiles[tile]
    return [_move(dram=ops.at("qwt") + g * ops.group * ops.n + n0, stride=ops.n,
                  sp=p.at["QW"] + g * ops.group, rows=ops.group, cols=nn) for g in groups]


def _tile_scales(p: _Plan, tile: int, buf: int) -> list[Instruction]:
    """n-tile ``tile``'s sw^T rows, L2q and sl2 into buffer ``buf`` (0 or 1)."""
    ops, at = p.ops, p.at
    n0, nn = p.tiles[tile]
    g, r = ops.groups, ops.r
    prog = [_move(dram=ops.at("swt") + n0 * 4, stride=ops.n * 4, sp=at["SW"] + buf * g,
                  rows=g, cols=nn, acc=1)]
    if r:
        prog += [_move(dram=ops.at("l2q") + n0, stride=ops.n, sp=at["L2"] + buf * r, rows=r,
                       cols=nn),
                 _move(dram=ops.at("sl2") + n0 * 4, stride=4, sp=at["SL2"] + buf, rows=1,
                       cols=nn, acc=1)]
    return prog


def _dots(p: _Plan, mb: int, nn: int, g: int) -> list[Instruction]:
    """Group ``g``'s dots of the block into dot buffer ``g mod 2``."""
    at, gs, edge = p.at, p.ops.group, p.edge
    return [_compute(at["QX"] + (g * gs + k0) // edge * mb, at["QW"] + g * gs + k0,
                     at["D"] + g % 2 * mb, mb, nn, kn, j > 0)
            for j, (k0, kn) in enumerate(blocks(gs, edge))]


def _mvout(p: _Plan, m0: int, mb: int, tile: int) -> Instruction:
    n0, nn = p.tiles[tile]
    return Instruction("mvout", (("acc", p.at["Y"]),
                                 ("dram", p.ops.at("y") + (m0 * p.ops.n + n0) * 4),
                                 ("stride", p.ops.n * 4), ("rows", mb), ("cols", nn)))


def _tile(p: _Plan, m0: int, mb: int, t: int, buf: int,
          nxt: int | None) -> list[Instruction]:
    """n-tile ``t`` of the block at ``m0`` (its tile scales in buffer ``buf``): the previous
    tile's output out, dots, the dequantizer's passes and output; the weights of n-tile
    ``nxt`` (None: none to load) moved in behind the groups as they finish."""
    at, g, r = p.at, p.ops.groups, p.ops.r
    nn = p.tiles[t][1]
    prog = [_mvout(p, m0, mb, t - 1)] if t else []
    prog += [_compute(at["U"] + j * mb, at["L2"] + buf * r + r0, at["LR"], mb, nn, rn, j > 0)
             for j, (r0, rn) in enumerate(p.rblocks)]
    prog += _dots(p, mb, nn, 0)
    prog.append(_unit("dequant", "clear", rows=mb, cols=nn, arg=at["S"],
                             shift=int(r > 0)))
    terms = [dict(src=at["SX"] + grp // p.ea * mb, count=grp % p.ea, dst=at["SW"] + buf * g +
                  grp, arg=at["D"] + grp % 2 * mb) for grp in range(g)]
    if r:
        terms.append(dict(src=at["SXL"], count=0, dst=at["SL2"] + buf, arg=at["LR"], shift=3))
    prog += [_unit("dequant", "exponent", rows=mb, cols=nn, **f) for f in terms]
    ahead = [] if nxt is None else _tile_scales(p, nxt, 1 - buf)
    for grp in range(g):
        if grp:
            prog += ahead if grp == 1 else []
            prog += [] if nxt is None else _weights(p, nxt, range(grp - 1, grp))
            prog += _dots(p, mb, nn, grp)
        prog.append(_unit("dequant", "term", rows=mb, cols=nn, **terms[grp]))
    if r:
        prog.append(_unit("dequant", "term", rows=mb, cols=nn, **terms[-1]))
    prog.append(_unit("dequant", "output", dst=at["Y"], rows=mb, cols=nn))
    prog += ahead if g == 1 else []
    return prog + ([] if nxt is None else _weights(p, nxt, range(g - 1, g)))


def svdquant_block_rows(arch: ArchSpec, ops: SVDQuantOperands,
                        dataflow: str | None = None) -> int:
    """The rows of a block of the layer's program (module docstring: at most the
    dequantizer's, as many as fit); ``SpecError`` when the layer does not fit."""
    return _plan(arch, ops, chain_dataflow(arch, dataflow, "SVDQuant")[1]).mb


def svdquant_program(arch: ArchSpec, ops: SVDQuantOperands,
                     dataflow: str | None = None) -> list[Instruction]:
    """The checked program of one layer (module docstring)."""
    index, edge = chain_dataflow(arch, dataflow, "SVDQuant")
    if ops.r > edge and ops.r % edge:
        raise SpecError(f"rank {ops.r} must be at most the array edge {edge} or a multiple of it")
    if arch.units.dequant.lanes < min(edge, ops.n):
        raise SpecError(f"the dequantizer's {arch.units.dequant.lanes} lanes are fewer than an "
                        f"output tile's {min(edge, ops.n)} columns")
    if max(ops.r, ops.groups) > 4095:
        raise SpecError(f"rank {ops.r} and {ops.groups} groups must be at most 4095 (a move's "
                        "rows field)")
    p = _plan(arch, ops, edge)
    order = [(m0, mb, t) for m0, mb in blocks(ops.m, p.mb) for t in range(len(p.tiles))]
    prog = [Instruction("config", (("dataflow", index),))]
    buf = 0
    for s, (m0, mb, t) in enumerate(order):
        if t == 0:
            prog += _block_start(p, m0, mb)
            if s == 0:
                prog += _weights(p, 0, range(ops.groups)) + _tile_scales(p, 0, 0)
        nxt = order[s + 1][2] if s + 1 < len(order) else None
        nxt = None if nxt == t else nxt             # one n-tile: its weights stay
        prog += _tile(p, m0, mb, t, buf, nxt)
        if t == len(p.tiles) - 1:
            prog.append(_mvout(p, m0, mb, t))
        buf ^= nxt is not None
    check_program(prog, arch)
    return prog


def run_svdquant_linear(arch: ArchSpec, qx: np.ndarray, sx: np.ndarray, qw: np.ndarray,
                        sw: np.ndarray, xl: np.ndarray, sxl: np.ndarray, l1q: np.ndarray,
                        l2q: np.ndarray, sl2: np.ndarray,
                        dataflow: str | None = None) -> KernelRun:
    """One layer on the reference machine (operands as :func:`golden.svdquant_fixed.
    svdquant_fixed_int` takes them; the weights are stored transposed); ``output`` is y,
    float32 (M, N)."""
    (m, k), (n, r) = np.shape(qx), np.shape(l2q)[::-1]
    ops = svdquant_operands(arch, m, k, n, r)
    program = svdquant_program(arch, ops, dataflow)
    a_t, c_t = arch.types[0], arch.types[2]
    machine = Machine(arch, ops.dram_bytes)
    codes = {"qx": qx, "qwt": np.asarray(qw).T, "xl": xl, "l1q": l1q, "l2q": l2q}
    scales = {"sx": sx, "swt": np.asarray(sw).T, "sxl": sxl, "sl2": sl2}
    for name, x in codes.items():
        machine.write_dram(ops.at(name), pack(np.ascontiguousarray(x), a_t))
    for name, x in scales.items():
        bits = np.ascontiguousarray(x, np.float32).view(np.int32).astype(np.int64)
        machine.write_dram(ops.at(name), pack(bits, c_t))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    raw = unpack(machine.read_dram(ops.at("y"), m * n * 4), m * n, c_t)
    y = raw.astype(np.int32).view(np.float32).reshape(m, n)
    return KernelRun(y, program, machine, dram_in)
