"""A whole SVDQuant linear layer as one accelerator program: the W4A4 residual's group dots
and the low-rank branch on the array, the branch's intermediate requantized on chip, and both
accumulated by the group dequantizer into one float32 output (:mod:`golden.svdquant_fixed`),
with nothing but operands and the output crossing DRAM.

With int4 codes ``qx`` (M x K), ``qw`` (N x K), their float32 group scales ``sx`` (M x G),
``sw`` (N x G), the branch's int8 ``xl`` (M x K) with row scales ``sxl``, ``l1q`` (K x r),
``l2q`` (r x N) with column scales ``sl2``, on a weight-stationary dataflow (A rows over i,
B rows over k, C rows over i)::

    branch    u32 = xl L1q;  requant rows: u = saturate(rsr(u32, s_m), 8), s_m per row
    per n-tile of E outputs:
      dots    D_g = qx[:, g] qw[:, g]^T for every group g;  D_lr = u L2q
      dequant clear (row offsets s_m); exponent pass over the G groups and the low-rank term
              (a zero low-rank dot is dead); term pass; output fl32 -> mvout
    scales    moved into accumulator rows as float32 bit patterns (mvin acc=1): sx rows
              (m, element g), sw transposed (g, element n), sxl (m), sl2 (n)

Everything stays resident (layers whose operands fit the memories: small and tiny layers; a
FLUX.1-sized layer needs the blocked loop nest of the GEMM kernels, not done). The rank must
be at most the array edge or a multiple of it; rank 0 is the plain W4A4 layer (no branch: what
the branch's cost is measured against).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arch import ArchSpec
from .isa import Instruction, check_program
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, chain_dataflow, unit_command
from .kernel_runs import ALIGN, KernelRun
from .spec_model import SpecError

__all__ = ["SVDQuantOperands", "run_svdquant_linear", "svdquant_operands", "svdquant_program"]

_NAMES = ("qx", "qw", "sx", "sw", "xl", "sxl", "l1q", "l2q", "sl2", "y")


@dataclass(frozen=True)
class SVDQuantOperands:
    """Shapes (M, K, N, rank r, group) and the DRAM byte address of each operand (row-major;
    codes one byte each, scales and the output 4 bytes)."""

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


def _layout(arch: ArchSpec, ops: SVDQuantOperands, edge: int) -> dict[str, int]:
    """Row bases in the scratchpad (upper case: QX, QWT, XL, L1, U, L2) and the accumulator
    (D, U32, S, LR, SX, SW, SXL, SL2, Y); ``SpecError`` when they do not fit."""
    m, k, n, r, g = ops.m, ops.k, ops.n, ops.r, ops.groups
    kt, rt, nt = -(-k // edge), -(-r // edge), -(-n // edge)
    sp = {"QX": 0, "XL": kt * m}
    sp["QWT"] = sp["XL"] + kt * m
    sp["L1"] = sp["QWT"] + nt * k
    sp["U"] = sp["L1"] + rt * k
    sp["L2"] = sp["U"] + rt * m
    sp_end = sp["L2"] + nt * r
    acc = {"D": 0, "U32": g * m}
    acc["S"] = acc["U32"] + rt * m
    acc["LR"] = acc["S"] + m
    acc["SX"] = acc["LR"] + m
    acc["SW"] = acc["SX"] + -(-g // edge) * m
    acc["SXL"] = acc["SW"] + nt * g
    acc["SL2"] = acc["SXL"] + m
    acc["Y"] = acc["SL2"] + nt
    acc_end = acc["Y"] + m
    sp_rows = arch.scratchpad.rows
    acc_rows = arch.accumulator.rows
    if sp_end > sp_rows or acc_end > acc_rows or max(m, k, r) > 4095:
        raise SpecError(f"an SVDQuant layer M={m} K={k} N={n} rank {r} does not fit "
                        f"{arch.name!r}'s memories (needs {sp_end} of {sp_rows} scratchpad rows, "
                        f"{acc_end} of {acc_rows} accumulator rows)")
    return sp | acc


def _moves(ops: SVDQuantOperands, lay: dict[str, int], edge: int) -> list[Instruction]:
    """Every operand and scale into the memories."""
    m, k, n, r, g = ops.m, ops.k, ops.n, ops.r, ops.groups
    mv = []

    def move(**f: int) -> None:
        mv.append(Instruction("mvin", tuple(f.items())))

    for t, (k0, kn) in enumerate(blocks(k, edge)):
        move(dram=ops.at("qx") + k0, stride=k, sp=lay["QX"] + t * m, rows=m, cols=kn)
        if r:
            move(dram=ops.at("xl") + k0, stride=k, sp=lay["XL"] + t * m, rows=m, cols=kn)
    for t, (r0, rn) in enumerate(blocks(r, edge)):
        move(dram=ops.at("l1q") + r0, stride=r, sp=lay["L1"] + t * k, rows=k, cols=rn)
    for t, (n0, nn) in enumerate(blocks(n, edge)):
        move(dram=ops.at("qw") + n0 * k, stride=k, sp=lay["QWT"] + t * k, rows=k, cols=nn,
             transpose=1)
        move(dram=ops.at("sw") + n0 * g * 4, stride=g * 4, sp=lay["SW"] + t * g, rows=g,
             cols=nn, transpose=1, acc=1)
        if r:
            move(dram=ops.at("l2q") + n0, stride=n, sp=lay["L2"] + t * r, rows=r, cols=nn)
            move(dram=ops.at("sl2") + n0 * 4, stride=4, sp=lay["SL2"] + t, rows=1, cols=nn,
                 acc=1)
    for t, (g0, gn) in enumerate(blocks(g, edge)):
        move(dram=ops.at("sx") + g0 * 4, stride=g * 4, sp=lay["SX"] + t * m, rows=m, cols=gn,
             acc=1)
    if r:
        move(dram=ops.at("sxl"), stride=4, sp=lay["SXL"], rows=m, cols=1, acc=1)
    return mv


def _compute(a: int, b: int, c: int, i: int, j: int, k: int, acc: bool) -> Instruction:
    return Instruction("compute", (("a", a), ("b", b), ("c", c), ("i", i), ("j", j), ("k", k),
                                   ("accumulate", int(acc))))


def _output_tile(ops: SVDQuantOperands, lay: dict[str, int], edge: int, t: int, n0: int,
                 nn: int, dequant_rows: int) -> list[Instruction]:
    """Dots, dequantization (in blocks of the ``dequant_rows`` the unit holds) and the output
    of the n-tile ``t`` (outputs ``n0 .. n0+nn-1``)."""
    m, k, r, g, gs = ops.m, ops.k, ops.r, ops.groups, ops.group
    prog = []
    for grp in range(g):
        for j, (k0, kn) in enumerate(blocks(gs, edge)):
            kk = grp * gs + k0
            prog.append(_compute(lay["QX"] + (kk // edge) * m, lay["QWT"] + t * k + kk,
                                 lay["D"] + grp * m, m, nn, kn, j > 0))
    for j, (r0, rn) in enumerate(blocks(r, edge)):
        prog.append(_compute(lay["U"] + j * m, lay["L2"] + t * r + r0, lay["LR"], m, nn, rn,
                             j > 0))
    for m0, mb in blocks(m, dequant_rows):      # the rows the dequantizer holds at once
        prog.append(unit_command("dequant", "clear", rows=mb, cols=nn, arg=lay["S"] + m0,
                                 shift=int(r > 0)))
        terms = [dict(src=lay["SX"] + (grp // edge) * m + m0, count=grp % edge,
                      dst=lay["SW"] + t * g + grp, arg=lay["D"] + grp * m + m0)
                 for grp in range(g)]
        if r:
            terms.append(dict(src=lay["SXL"] + m0, count=0, dst=lay["SL2"] + t,
                              arg=lay["LR"] + m0, shift=3))
        for mode in ("exponent", "term"):
            prog += [unit_command("dequant", mode, rows=mb, cols=nn, **f) for f in terms]
        prog.append(unit_command("dequant", "output", dst=lay["Y"] + m0, rows=mb, cols=nn))
    prog.append(Instruction("mvout", (("acc", lay["Y"]), ("dram", ops.at("y") + n0 * 4),
                                      ("stride", ops.n * 4), ("rows", m), ("cols", nn))))
    return prog


def svdquant_program(arch: ArchSpec, ops: SVDQuantOperands,
                     dataflow: str | None = None) -> list[Instruction]:
    """The checked program of one layer (module docstring)."""
    index, edge = chain_dataflow(arch, dataflow, "SVDQuant")
    if ops.r > edge and ops.r % edge:
        raise SpecError(f"rank {ops.r} must be at most the array edge {edge} or a multiple of it")
    if arch.units.dequant.lanes < min(edge, ops.n):
        raise SpecError(f"the dequantizer's {arch.units.dequant.lanes} lanes are fewer than an "
                        f"output tile's {min(edge, ops.n)} columns")
    lay = _layout(arch, ops, edge)
    prog = [Instruction("config", (("dataflow", index),))] + _moves(ops, lay, edge)
    rblocks = blocks(ops.r, edge)
    for j, (_, rn) in enumerate(rblocks):
        for t, (k0, kn) in enumerate(blocks(ops.k, edge)):
            prog.append(_compute(lay["XL"] + t * ops.m, lay["L1"] + j * ops.k + k0,
                                 lay["U32"] + j * ops.m, ops.m, rn, kn, t > 0))
    if rblocks:
        prog.append(unit_command("requant", "rows", src=lay["U32"], dst=lay["U"], rows=ops.m,
                                 cols=rblocks[0][1], count=len(rblocks), arg=lay["S"]))
    for t, (n0, nn) in enumerate(blocks(ops.n, edge)):
        prog += _output_tile(ops, lay, edge, t, n0, nn, arch.units.dequant.rows)
    check_program(prog, arch)
    return prog


def run_svdquant_linear(arch: ArchSpec, qx: np.ndarray, sx: np.ndarray, qw: np.ndarray,
                        sw: np.ndarray, xl: np.ndarray, sxl: np.ndarray, l1q: np.ndarray,
                        l2q: np.ndarray, sl2: np.ndarray,
                        dataflow: str | None = None) -> KernelRun:
    """One layer on the reference machine (operands as :func:`golden.svdquant_fixed.
    svdquant_fixed_int` takes them); ``output`` is y, float32 (M, N)."""
    (m, k), (n, r) = np.shape(qx), np.shape(l2q)[::-1]
    ops = svdquant_operands(arch, m, k, n, r)
    program = svdquant_program(arch, ops, dataflow)
    a_t, c_t = arch.types[0], arch.types[2]
    machine = Machine(arch, ops.dram_bytes)
    codes = {"qx": qx, "qw": qw, "xl": xl, "l1q": l1q, "l2q": l2q}
    scales = {"sx": sx, "sw": sw, "sxl": sxl, "sl2": sl2}
    for name, x in codes.items():
        machine.write_dram(ops.at(name), pack(np.asarray(x), a_t))
    for name, x in scales.items():
        bits = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
        machine.write_dram(ops.at(name), pack(bits, c_t))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    raw = unpack(machine.read_dram(ops.at("y"), m * n * 4), m * n, c_t)
    y = raw.astype(np.int32).view(np.float32).reshape(m, n)
    return KernelRun(y, program, machine, dram_in)
