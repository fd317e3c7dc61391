"""A retrieval head's decode step at a long context: the keys and values stay in DRAM and
stream through the accelerator in blocks, twice (a row max first, then the weights against
it: :func:`golden.attention_fixed.weights_below_max`), so the context is bounded by the DRAM,
not the scratchpad. The outputs equal :func:`golden.attention_fixed.attention_head_int`'s
for the query over every key (all integer sums: exact in any block order).

With ``G`` query heads ``q`` (G x D) at position ``L`` and the head's keys and values
``k``, ``v`` (L + 1 rows: the new token's at ``L``) int8 in DRAM, per key block of ``KB``
keys (on a dataflow with A rows over i, B rows over k, C rows over i)::

    pass 1   logits S = q K_b^T (G x KB, blocks of E keys in accumulator rows), requant wide
             (the logit multiplier), softmax max: the running row max (replaced by the
             first block's)
    pass 2   logits again, softmax scaled: int8 weights P against the max;
             O += P V_b,  den += P 1 (a column of ones: the weights' sum)
    then     normalizer: out = normalize(O, den), mvout

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

__all__ = ["LongDecode", "long_decode_program", "run_long_decode"]


@dataclass(frozen=True)
class LongDecode:
    """One decode step: ``g`` query heads, ``keys`` (= L + 1) keys of ``d``, values of ``dv``,
    the logit multiplier and shift, ``kb`` keys a block; DRAM byte addresses of q (g x d),
    k (keys x d), v (keys x dv), one constant byte 1 and the output (g x dv, C elements)."""

    g: int
    keys: int
    d: int
    dv: int
    mult: int
    shift: int
    kb: int
    q: int = 0
    k: int = 0
    v: int = 0
    ones: int = 0
    out: int = 0

    def __post_init__(self) -> None:
        for name in ("g", "keys", "d", "dv", "kb"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")


def _layout(e: int, op: LongDecode) -> dict[str, int]:
    nd, nv, nb = -(-op.d // e), -(-op.dv // e), -(-op.kb // e)
    sp = {"Q": 0, "KT": nd * op.g}
    sp["P"] = sp["KT"] + nb * op.d
    sp["V"] = sp["P"] + nb * op.g
    sp["ONES"] = sp["V"] + nv * op.kb
    sp["end"] = sp["ONES"] + op.kb
    acc = {"S": 0, "MAX": nb * op.g}
    acc["DEN"] = acc["MAX"] + op.g
    acc["O"] = acc["DEN"] + op.g
    acc["end"] = acc["O"] + nv * op.g
    return {**{f"sp_{k}": v for k, v in sp.items()}, **{f"acc_{k}": v for k, v in acc.items()}}


def largest_block(arch: ArchSpec, g: int, d: int, dv: int, limit: int = 4095) -> int:
    """The most keys a block may hold (a multiple of the array edge, at most ``limit``) for
    the memories of ``arch``; 0 if not even one edge of keys fits."""
    _, e = chain_dataflow(arch, None, "long-context decode")
    best = 0
    for kb in range(e, limit + 1, e):
        lay = _layout(e, LongDecode(g, 1, d, dv, 1, 0, kb))
        if lay["sp_end"] > arch.scratchpad.rows or lay["acc_end"] > arch.accumulator.rows:
            break
        best = kb
    return best


def _logits(op: LongDecode, lay: dict, e: int, k0: int, kn: int) -> list[Instruction]:
    """K^T of keys ``k0 .. k0 + kn - 1`` moved in and their requantized logits."""
    prog = []
    sub = blocks(kn, e)
    for b, (c0, cn) in enumerate(sub):
        prog.append(Instruction("mvin", (("dram", op.k + (k0 + c0) * op.d), ("stride", op.d),
                                         ("sp", lay["sp_KT"] + b * op.d), ("rows", op.d),
                                         ("cols", cn), ("transpose", 1))))
    for b, (_, cn) in enumerate(sub):
        for t, (d0, dn) in enumerate(blocks(op.d, e)):
            prog.append(Instruction("compute", (
                ("a", lay["sp_Q"] + t * op.g), ("b", lay["sp_KT"] + b * op.d + d0),
                ("c", lay["acc_S"] + b * op.g), ("i", op.g), ("j", cn), ("k", dn),
                ("accumulate", int(t > 0)))))
    prog.append(unit_command("requant", "wide", src=lay["acc_S"], dst=lay["acc_S"],
                             rows=len(sub) * op.g, cols=e, arg=op.mult, shift=op.shift))
    return prog


def _weighted_sum(op: LongDecode, lay: dict, e: int, k0: int, kn: int, first: bool
                  ) -> list[Instruction]:
    """The block's values moved in, then O += P V and den += P 1."""
    prog = []
    vt = blocks(op.dv, e)
    for t, (v0, vn) in enumerate(vt):
        prog.append(Instruction("mvin", (("dram", op.v + k0 * op.dv + v0), ("stride", op.dv),
                                         ("sp", lay["sp_V"] + t * op.kb), ("rows", kn),
                                         ("cols", vn))))
    for b, (c0, cn) in enumerate(blocks(kn, e)):
        acc = int(not first or b > 0)
        for t, (_, vn) in enumerate(vt):
            prog.append(Instruction("compute", (
                ("a", lay["sp_P"] + b * op.g), ("b", lay["sp_V"] + t * op.kb + c0),
                ("c", lay["acc_O"] + t * op.g), ("i", op.g), ("j", vn), ("k", cn),
                ("accumulate", acc))))
        prog.append(Instruction("compute", (
            ("a", lay["sp_P"] + b * op.g), ("b", lay["sp_ONES"] + c0), ("c", lay["acc_DEN"]),
            ("i", op.g), ("j", 1), ("k", cn), ("accumulate", acc))))
    return prog


def long_decode_program(arch: ArchSpec, op: LongDecode) -> list[Instruction]:
    """The checked program of one decode step (module docstring)."""
    index, e = chain_dataflow(arch, None, "long-context decode")
    lay = _layout(e, op)
    if lay["sp_end"] > arch.scratchpad.rows or lay["acc_end"] > arch.accumulator.rows:
        raise SpecError(f"a block of {op.kb} keys for {op.g} query heads, d={op.d}, dv={op.dv} "
                        f"does not fit {arch.name!r}'s memories (largest block: "
                        f"{largest_block(arch, op.g, op.d, op.dv)})")
    prog = [Instruction("config", (("dataflow", index),)),
            Instruction("mvin", (("dram", op.ones), ("stride", 0), ("sp", lay["sp_ONES"]),
                                 ("rows", op.kb), ("cols", 1)))]
    for t, (d0, dn) in enumerate(blocks(op.d, e)):
        prog.append(Instruction("mvin", (("dram", op.q + d0), ("stride", op.d),
                                         ("sp", lay["sp_Q"] + t * op.g), ("rows", op.g),
                                         ("cols", dn))))
    kblocks = blocks(op.keys, op.kb)
    for n, (k0, kn) in enumerate(kblocks):
        prog += _logits(op, lay, e, k0, kn)
        prog.append(unit_command("softmax", "max", src=lay["acc_S"], rows=op.g, cols=kn,
                                 arg=lay["acc_MAX"], shift=int(n == 0)))
    for n, (k0, kn) in enumerate(kblocks):
        prog += _logits(op, lay, e, k0, kn)
        prog.append(unit_command("softmax", "scaled", src=lay["acc_S"], dst=lay["sp_P"],
                                 rows=op.g, cols=kn, arg=lay["acc_MAX"]))
        prog += _weighted_sum(op, lay, e, k0, kn, n == 0)
    ob = arch.types[2].bits // 8
    for t, (v0, vn) in enumerate(blocks(op.dv, e)):
        prog.append(unit_command("normalizer", "divide", src=lay["acc_O"] + t * op.g,
                                 dst=lay["acc_O"] + t * op.g, rows=op.g, cols=vn,
                                 arg=lay["acc_DEN"], count=1))
        prog.append(Instruction("mvout", (("acc", lay["acc_O"] + t * op.g),
                                          ("dram", op.out + v0 * ob), ("stride", op.dv * ob),
                                          ("rows", op.g), ("cols", vn))))
    check_program(prog, arch)
    return prog


def run_long_decode(arch: ArchSpec, q: np.ndarray, k: np.ndarray, v: np.ndarray, mult: int,
                    shift: int, kb: int | None = None) -> KernelRun:
    """One decode step of int8 ``q`` (G, D) over keys ``k`` (L + 1, D) and values ``v``
    (L + 1, Dv) on the reference machine, ``kb`` keys a block (default: the largest that
    fits); ``output`` is (G, Dv), the normalizer's codes."""
    q, k, v = (np.asarray(x) for x in (q, k, v))
    if q.ndim != 2 or k.ndim != 2 or v.ndim != 2 or k.shape[1] != q.shape[1] \
            or v.shape[0] != k.shape[0]:
        raise ValueError(f"q {q.shape}, k {k.shape}, v {v.shape}: expected (G, D), (L+1, D), "
                         "(L+1, Dv)")
    (g, d), (keys, dv) = q.shape, v.shape
    kb = kb or largest_block(arch, g, d, dv)
    addr = np.cumsum([ALIGN] + [-(-n // ALIGN) * ALIGN for n in (q.size, k.size, v.size, 1)])
    op = LongDecode(g, keys, d, dv, mult, shift, kb, *(int(a) for a in addr))
    program = long_decode_program(arch, op)
    c_t = arch.types[2]
    machine = Machine(arch, op.out + g * dv * c_t.bits // 8)
    for base, x in ((op.q, q), (op.k, k), (op.v, v), (op.ones, np.ones(1, np.int64))):
        machine.write_dram(base, pack(x, arch.types[0]))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    out = unpack(machine.read_dram(op.out, g * dv * c_t.bits // 8), g * dv, c_t)
    return KernelRun(out.reshape(g, dv), program, machine, dram_in)
