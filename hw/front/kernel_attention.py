"""A whole linear-attention head (Sana's ReLU linear attention) as one accelerator program:
the chain of :mod:`golden.linear_attention_chain` with nothing but the inputs and the output
crossing DRAM.

With int8 codes ``q``, ``k`` (N x D) and ``v`` (N x Dv) in DRAM, on a dataflow that keeps A
rows over i, B rows over k and C rows over i (weight-stationary; a spatial reduction too)::

    stage 1   C1 = relu(K)^T [V | 1]       (D x (Dv + 1)): VK^T and, last column, KS
              A = relu(K)^T by transposing moves with relu=1, B = V, the ones column by a
              stride-0 move of one constant byte
    requant   absmax over VK  ->  pow2 = s;  VK8 = operand(VK, shift from the register)
              KS into nb 7-bit slices (slices)        B2 = [VK8^T | KS_0 .. KS_nb-1]
    stage 2   per block of queries: C2 = relu(Q) B2  (num8 and the den partials)
              normalizer: out = normalize(num8 << s, sum_b part_b << 7b)   then mvout

Stage 1 streams the tokens' K^T and V tiles through two buffers (the next tile's moves wait
only for the computes reading the buffer they overwrite), stage 2 the queries in blocks, so N
is bounded by nothing but the DRAM (and the exactness of KS's slices); B2, a block of
queries and its results must fit the memories. The output is int32 codes of the normalizer's
``8 + out_frac_bits`` bits. :func:`run_linear_attention` runs it on the reference machine.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arch import ArchSpec
from .isa import SHIFT_FROM_REGISTER, Instruction, check_program
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, chain_dataflow, unit_command
from .kernel_runs import ALIGN, KernelRun
from .spec_model import SpecError

__all__ = ["LinearAttentionOperands", "linear_attention_operands", "linear_attention_program",
           "run_linear_attention"]


@dataclass(frozen=True)
class LinearAttentionOperands:
    """Shapes and DRAM byte addresses of one head: q, k (n x d), v (n x dv) int8 row-major,
    one constant byte 1 at ``ones``, the output (n x dv elements of ``out_bytes`` each, the
    accumulator's type) at ``out``."""

    n: int
    d: int
    dv: int
    q: int
    k: int
    v: int
    ones: int
    out: int
    out_bytes: int = 4

    def __post_init__(self) -> None:
        for name in ("n", "d", "dv"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")

    @property
    def dram_bytes(self) -> int:
        return self.out + self.n * self.dv * self.out_bytes


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def linear_attention_operands(arch: ArchSpec, n: int, d: int, dv: int
                              ) -> LinearAttentionOperands:
    """q, k, v, the constant and the output one after the other from byte ``ALIGN``
    (``SpecError`` unless ``arch``'s operands are 8-bit: the chain's codes are int8)."""
    if arch.types[0].bits != 8:
        raise SpecError(f"the linear-attention kernel takes int8 codes; architecture "
                        f"{arch.name!r} has {arch.types[0]} operands")
    q = ALIGN
    k = _aligned(q + n * d)
    v = _aligned(k + n * d)
    ones = _aligned(v + n * dv)
    return LinearAttentionOperands(n, d, dv, q, k, v, ones, _aligned(ones + 1),
                                   arch.types[2].bits // 8)


def linear_attention_program(arch: ArchSpec, ops: LinearAttentionOperands,
                             dataflow: str | None = None) -> list[Instruction]:
    """The checked program of one head (module docstring); ``SpecError`` when a unit it needs
    is missing or the head does not fit the memories."""
    from golden.linear_attention_chain import ks_slice_count

    for unit in ("requant", "normalizer"):
        if getattr(arch.units, unit) is None:
            raise SpecError(f"architecture {arch.name!r} has no {unit} unit; the linear-"
                            "attention kernel needs requant and normalizer")
    index, edge = chain_dataflow(arch, dataflow, "linear-attention")
    n, d, dv = ops.n, ops.d, ops.dv
    nb = ks_slice_count(n)
    vt = blocks(dv, edge)                      # the value tiles; one more for ones / slices
    jt = len(vt) + 1
    sp_rows = arch.scratchpad.rows
    acc_rows = arch.accumulator.rows
    nt = blocks(n, edge)
    a1, b1 = 0, 2 * d                          # stage 1's tiles, double-buffered
    b2 = b1 + 2 * jt * edge
    a2 = b2 + jt * d
    qb = min(n, (acc_rows - jt * d) // jt, 4095, (sp_rows - a2) // max(-(-d // edge), 1))
    if qb < 1:
        raise SpecError(f"a head of {n} tokens, d={d}, dv={dv} does not fit "
                        f"{arch.name!r}'s memories (scratchpad rows {sp_rows}, accumulator "
                        f"rows {acc_rows})")
    c1, c2 = 0, jt * d
    prog = [Instruction("config", (("dataflow", index),))]
    for t, (n0, kt) in enumerate(nt):
        buf = t % 2                            # the next tile loads while this one computes
        prog.append(Instruction("mvin", (("dram", ops.k + n0 * d), ("stride", d),
                                         ("sp", a1 + buf * d), ("rows", d), ("cols", kt),
                                         ("transpose", 1), ("relu", 1))))
        for j, (e0, et) in enumerate(vt):
            prog.append(Instruction("mvin", (("dram", ops.v + n0 * dv + e0), ("stride", dv),
                                             ("sp", b1 + (buf * jt + j) * edge), ("rows", kt),
                                             ("cols", et))))
        prog.append(Instruction("mvin", (("dram", ops.ones), ("stride", 0),
                                         ("sp", b1 + (buf * jt + jt - 1) * edge),
                                         ("rows", kt), ("cols", 1))))
        for j, width in enumerate([et for _, et in vt] + [1]):
            prog.append(Instruction("compute", (("a", a1 + buf * d),
                                                ("b", b1 + (buf * jt + j) * edge),
                                                ("c", c1 + j * d), ("i", d), ("j", width),
                                                ("k", kt), ("accumulate", int(t > 0)))))
    for j, (_, et) in enumerate(vt):
        prog.append(unit_command("requant", "absmax", src=c1 + j * d, rows=d, cols=et,
                                 arg=int(j > 0)))
    for j, (_, et) in enumerate(vt):
        prog.append(unit_command("requant", "operand", src=c1 + j * d, dst=b2 + j * d, rows=d,
                                 cols=et, arg=1, shift=SHIFT_FROM_REGISTER))
    prog.append(unit_command("requant", "slices", src=c1 + (jt - 1) * d, dst=b2 + (jt - 1) * d,
                             rows=d, cols=nb))
    for q0, qn in blocks(n, qb):
        prog += _query_block(ops, q0, qn, qb, edge, vt, nb, a2, b2, c2)
    check_program(prog, arch)
    return prog


def _query_block(ops: LinearAttentionOperands, q0: int, qn: int, qb: int, edge: int,
                 vt: list[tuple[int, int]], nb: int, a2: int, b2: int, c2: int
                 ) -> list[Instruction]:
    """Stage 2, the normalizer and the output of queries ``q0 .. q0 + qn - 1``."""
    d, dv, jt = ops.d, ops.dv, len(vt) + 1
    prog = []
    dts = blocks(d, edge)
    for t, (d0, dn) in enumerate(dts):
        prog.append(Instruction("mvin", (("dram", ops.q + q0 * d + d0), ("stride", d),
                                         ("sp", a2 + t * qb), ("rows", qn), ("cols", dn),
                                         ("relu", 1))))
    for j, width in enumerate([et for _, et in vt] + [nb]):
        for t, (d0, dn) in enumerate(dts):
            prog.append(Instruction("compute", (("a", a2 + t * qb), ("b", b2 + j * d + d0),
                                                ("c", c2 + j * qb), ("i", qn), ("j", width),
                                                ("k", dn), ("accumulate", int(t > 0)))))
    for j, (e0, et) in enumerate(vt):
        prog.append(unit_command("normalizer", "divide", src=c2 + j * qb, dst=c2 + j * qb,
                                 rows=qn, cols=et, arg=c2 + (jt - 1) * qb,
                                 shift=SHIFT_FROM_REGISTER, count=nb))
        out = ops.out + (q0 * dv + e0) * ops.out_bytes
        prog.append(Instruction("mvout", (("acc", c2 + j * qb), ("dram", out),
                                          ("stride", dv * ops.out_bytes), ("rows", qn),
                                          ("cols", et))))
    return prog


def run_linear_attention(arch: ArchSpec, qc: np.ndarray, kc: np.ndarray, vc: np.ndarray,
                         dataflow: str | None = None) -> KernelRun:
    """One head of int8 codes ``qc``, ``kc`` (N x D), ``vc`` (N x Dv) on the reference
    machine; ``output`` is the normalizer's codes (N x Dv)."""
    qc, kc, vc = (np.asarray(x) for x in (qc, kc, vc))
    if qc.ndim != 2 or qc.shape != kc.shape or vc.ndim != 2 or vc.shape[0] != qc.shape[0]:
        raise ValueError(f"q {qc.shape}, k {kc.shape}, v {vc.shape}: expected (N, D), (N, D), "
                         "(N, Dv)")
    ops = linear_attention_operands(arch, qc.shape[0], qc.shape[1], vc.shape[1])
    program = linear_attention_program(arch, ops, dataflow)
    a_t, c_t = arch.types[0], arch.types[2]
    machine = Machine(arch, _aligned(ops.dram_bytes))
    for addr, x in ((ops.q, qc), (ops.k, kc), (ops.v, vc)):
        machine.write_dram(addr, pack(x, a_t))
    machine.write_dram(ops.ones, pack(np.ones(1, np.int64), a_t))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    size = ops.n * ops.dv
    out = unpack(machine.read_dram(ops.out, size * c_t.bits // 8), size, c_t)
    return KernelRun(out.reshape(ops.n, ops.dv), program, machine, dram_in)
