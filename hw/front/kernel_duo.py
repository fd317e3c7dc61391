"""A DuoAttention KV head (streaming or retrieval) on the accelerator: its KV cache kept in the
scratchpad across programs, one program per chunk of tokens (chunked prefill; one token is a
decode step), the query heads of its GQA group together. The arithmetic is
:mod:`golden.attention_fixed`'s; the cache is :mod:`golden.attention_cache_fixed`'s (read in
slot order, written through the ring address).

Per step of ``C`` tokens at positions ``L .. L + C - 1`` (``R = G C`` query rows), on a
dataflow keeping A rows over i, B rows over k, C rows over i (weight-stationary)::

    moves     Q rows (per head of the group), the chunk's K^T (transposing moves) and V rows
    S         Q K^T over the cache's key blocks (K^T kept as D rows of E slots each) then the
              chunk's; one accumulator tile of R rows per block of E keys
    requant   logits = saturate(round_shift_right(S * mult, shift), 32)          (wide)
    softmax   weights (row max over the visible keys, exp2, int8) into the scratchpad as the
              A operand of P V, row sums into the accumulator        (descriptor kv's mask)
    P V       over the cache's V rows (one per slot) then the chunk's
    normalize out = normalize(O, sum w); mvout
    cache     the chunk's surviving tokens into their slots: K^T by a one-column transposing
              move at element ``slot mod E``, V by a one-row move; kv_cache advance

A step's program depends on the head's shapes and the position ``L`` only (not on the codes
nor on the steps before it): :func:`duo_step_program` builds the step at any ``L`` (what a
mapper costs), :class:`DuoHead` runs the steps in order on the reference machine.

Slot addresses are computed when the program is generated (positions are known then): the
same ``ring_address`` the kv_cache unit's generator (:mod:`hw.ir.units.kv_address`) forms in
hardware. Everything of a step stays resident: the cache (sink + recent slots, or every token
for a retrieval head) and one chunk must fit the memories (heads of a few thousand tokens on
the shipped architecture; a longer retrieval head would stream key blocks twice, not done).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from golden.attention_cache_fixed import ring_address

from .arch import ArchSpec
from .isa import Instruction, check_program
from .isa_machine import Machine, pack, unpack
from .kernel_chain import blocks, chain_dataflow, unit_command
from .kernel_runs import ALIGN
from .spec_model import SpecError

__all__ = ["DuoHead", "DuoSteps", "attention_config", "cache_slots", "duo_step_program",
           "duo_steps"]


def attention_config(arch: ArchSpec):
    """The :class:`golden.attention_fixed.AttentionFixedConfig` of ``arch``'s softmax,
    requant and normalizer units (what :class:`DuoHead` computes, for golden to check)."""
    u = arch.units
    return replace(u.softmax.attention_config(), mult_bits=u.requant.mult_bits,
                   out_frac_bits=u.normalizer.out_frac_bits, den_bits=u.normalizer.den_bits,
                   recip_frac_bits=u.normalizer.recip_frac_bits)


def _move(**fields: int) -> Instruction:
    return Instruction("mvin", tuple(fields.items()))


@dataclass(frozen=True)
class _Layout:
    """Row bases in the scratchpad (sp) and the accumulator (acc), and the capacities."""

    edge: int
    slots: int          # cache slots, rounded up to whole rows of edge
    chunk: int          # largest chunk, rounded up likewise
    rows: int           # largest R = G * chunk
    kt: int
    v: int
    ktc: int
    vc: int
    qa: int
    p: int
    s: int
    den: int
    o: int


def _layout(arch: ArchSpec, e: int, g: int, cap: int, d: int, dv: int,
            max_chunk: int) -> _Layout | None:
    """Where a head of ``cap`` cache slots, chunks of up to ``max_chunk`` tokens and ``g``
    query heads lies in the memories, or ``None`` when it does not fit."""
    slots, chunk = -(-cap // e) * e, -(-max_chunk // e) * e
    rows = g * max_chunk
    nd, nv = -(-d // e), -(-dv // e)
    kt, v = 0, (slots // e) * d
    ktc = v + nv * slots
    vc = ktc + (chunk // e) * d
    qa = vc + nv * chunk
    p = qa + nd * rows
    blocks = (slots + chunk) // e
    s, den = 0, blocks * rows
    o = den + rows
    sp_rows, acc_rows = arch.scratchpad.rows, arch.accumulator.rows
    if p + blocks * rows > sp_rows or o + nv * rows > acc_rows or rows > 4095:
        return None
    return _Layout(e, slots, chunk, rows, kt, v, ktc, vc, qa, p, s, den, o)


@dataclass(frozen=True)
class DuoSteps:
    """What the step programs of one head depend on: ``g`` query heads of ``d``, values of
    ``dv``, ``t`` tokens in DRAM (q (g, t, d), k (t, d), v (t, dv), the output (g, t, dv) of C
    elements at the byte addresses ``addr``, then the DRAM's end), the logit multiplier and
    shift, the window (sink, recent) of a streaming head (``None``: retrieval), chunks of at
    most ``max_chunk``, kv_cache descriptor ``kv``, the dataflow's index and the layout."""

    g: int
    t: int
    d: int
    dv: int
    mult: int
    shift: int
    window: tuple[int, int] | None
    max_chunk: int
    kv: int
    index: int
    lay: _Layout
    addr: tuple[int, int, int, int, int]


def duo_steps(arch: ArchSpec, g: int, t: int, d: int, dv: int, mult: int, shift: int,
              sink: int | None = None, recent: int | None = None, max_chunk: int = 64,
              kv: int = 0, dataflow: str | None = None) -> DuoSteps:
    """The steps of a head of these shapes on ``arch`` (:class:`DuoHead`'s arguments, the
    codes by their shapes; q, k, v and the output one after the other from ``ALIGN``);
    ``SpecError`` when a unit is missing or the head does not fit, ``ValueError`` for a
    half-given window."""
    for unit in ("requant", "softmax", "normalizer", "kv_cache"):
        if getattr(arch.units, unit) is None:
            raise SpecError(f"architecture {arch.name!r} has no {unit} unit; the "
                            "attention head needs requant, softmax, normalizer, kv_cache")
    if (sink is None) != (recent is None) or (recent is not None and recent < 1):
        raise ValueError(f"give sink >= 0 and recent >= 1 together (streaming) or neither "
                         f"(retrieval), got sink={sink!r}, recent={recent!r}")
    window = (sink, recent) if recent is not None else None
    index, edge = chain_dataflow(arch, dataflow, "attention-head")
    if edge != arch.accumulator.row_bytes * 8 // arch.types[2].bits or \
            edge != arch.scratchpad.row_bytes * 8 // arch.types[0].bits:
        raise SpecError(f"architecture {arch.name!r}: the attention kernel needs rows of "
                        f"the array edge {edge} in both memories")
    cap = t if window is None else sum(window)
    lay = _layout(arch, edge, g, cap, d, dv, max_chunk)
    if lay is None:
        raise SpecError(f"a head of {cap} cached tokens with chunks of {max_chunk} and "
                        f"{g} query heads does not fit {arch.name!r}'s memories "
                        f"({arch.scratchpad.rows} scratchpad rows, {arch.accumulator.rows} "
                        "accumulator rows)")
    sizes = [g * t * d, t * d, t * dv, g * t * dv * arch.types[2].bits // 8]
    addr = tuple(int(a) for a in np.cumsum([ALIGN] + [-(-n // ALIGN) * ALIGN for n in sizes]))
    return DuoSteps(g, t, d, dv, mult, shift, window, max_chunk, kv, index, lay, addr)


def duo_step_program(arch: ArchSpec, head: DuoSteps, length: int, c: int
                     ) -> list[Instruction]:
    """The checked program of the step of ``c`` tokens at positions ``length .. length + c -
    1`` (module docstring), the one :class:`DuoHead` runs after ``length`` tokens."""
    most = min(head.max_chunk, head.t - length)
    if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= most:
        raise ValueError(f"chunk must be an int in 1..{most} (max_chunk {head.max_chunk}, "
                         f"{head.t - length} tokens left), got {c!r}")
    lay, e, d, dv = head.lay, head.lay.edge, head.d, head.dv
    r = head.g * c
    slots = length if head.window is None else sum(head.window)
    cached = -(-slots // e) * e                         # key slots the cache presents
    prog = [Instruction("config", (("dataflow", head.index),))]
    for g in range(head.g):
        for t, (d0, dn) in enumerate(blocks(d, e)):
            prog.append(_move(dram=head.addr[0] + (g * head.t + length) * d + d0,
                              stride=d, sp=lay.qa + t * lay.rows + g * c, rows=c, cols=dn))
    for b, (c0, cn) in enumerate(blocks(c, e)):
        prog.append(_move(dram=head.addr[1] + (length + c0) * d, stride=d,
                          sp=lay.ktc + b * d, rows=d, cols=cn, transpose=1))
    for b, (e0, en) in enumerate(blocks(dv, e)):
        prog.append(_move(dram=head.addr[2] + length * dv + e0, stride=dv,
                          sp=lay.vc + b * lay.chunk, rows=c, cols=en))
    keys = [(lay.kt + b * d, e) for b in range(cached // e)] + \
           [(lay.ktc + b * d, cn) for b, (_, cn) in enumerate(blocks(c, e))]
    for kb, (base, width) in enumerate(keys):
        for t, (d0, dn) in enumerate(blocks(d, e)):
            prog.append(Instruction("compute", (
                ("a", lay.qa + t * lay.rows), ("b", base + d0), ("c", lay.s + kb * r),
                ("i", r), ("j", width), ("k", dn), ("accumulate", int(t > 0)))))
    prog.append(unit_command("requant", "wide", src=lay.s, dst=lay.s, rows=len(keys) * r,
                             cols=e, arg=head.mult, shift=head.shift))
    prog.append(unit_command("softmax", "weights", src=lay.s, dst=lay.p, rows=r,
                             cols=cached + c, arg=lay.den, kv=head.kv))
    prog += _pv_and_out(arch, head, length, c, cached, keys)
    prog += _cache_writes(head, length, c)
    prog.append(unit_command("kv_cache", "advance", rows=c, kv=head.kv))
    check_program(prog, arch)
    return prog


def _pv_and_out(arch: ArchSpec, head: DuoSteps, length: int, c: int, cached: int,
                keys: list) -> list[Instruction]:
    lay, e, dv, ob = head.lay, head.lay.edge, head.dv, arch.types[2].bits // 8
    r = head.g * c
    prog = []
    for b, (e0, en) in enumerate(blocks(dv, e)):
        for kb, (_, width) in enumerate(keys):
            vrow = (lay.v + b * lay.slots + kb * e if kb < cached // e
                    else lay.vc + b * lay.chunk + (kb - cached // e) * e)
            prog.append(Instruction("compute", (
                ("a", lay.p + kb * r), ("b", vrow), ("c", lay.o + b * r), ("i", r),
                ("j", en), ("k", width), ("accumulate", int(kb > 0)))))
        prog.append(unit_command("normalizer", "divide", src=lay.o + b * r,
                                 dst=lay.o + b * r, rows=r, cols=en, arg=lay.den, count=1))
        for g in range(head.g):
            prog.append(Instruction("mvout", (
                ("acc", lay.o + b * r + g * c),
                ("dram", head.addr[3] + ((g * head.t + length) * dv + e0) * ob),
                ("stride", dv * ob), ("rows", c), ("cols", en))))
    return prog


def cache_slots(head: DuoSteps, length: int, c: int) -> list[tuple[int, int]]:
    """(position, cache slot) of the tokens of the step at ``length`` of ``c`` tokens that
    stay in the cache (a streaming head's ring drops those overwritten within the step)."""
    if head.window is None:
        return [(pos, pos) for pos in range(length, length + c)]
    sink, recent = head.window
    return [(pos, ring_address(pos, sink, recent)) for pos in range(length, length + c)
            if not sink <= pos < length + c - recent]


def _cache_writes(head: DuoSteps, length: int, c: int) -> list[Instruction]:
    """The chunk's tokens that stay in the cache, into their slots."""
    lay, e, d, dv = head.lay, head.lay.edge, head.d, head.dv
    prog = []
    for pos, slot in cache_slots(head, length, c):
        prog.append(_move(dram=head.addr[1] + pos * d, stride=d,
                          sp=lay.kt + (slot // e) * d, rows=d, cols=1, transpose=1,
                          col=slot % e))
        for b, (e0, en) in enumerate(blocks(dv, e)):
            prog.append(_move(dram=head.addr[2] + pos * dv + e0, stride=dv,
                              sp=lay.v + b * lay.slots + slot, rows=1, cols=en))
    return prog


class DuoHead:
    """One KV head and its group of ``G`` query heads over a whole sequence of ``T`` tokens
    (``q`` (G, T, D), ``k`` (T, D), ``v`` (T, Dv) int8 codes) on the reference machine of
    ``arch``; ``sink``/``recent`` for a streaming head, neither for a retrieval head.
    :meth:`step` runs the next ``C`` tokens (:func:`duo_step_program` at the head's length)
    and returns their outputs (G, C, Dv)."""

    def __init__(self, arch: ArchSpec, q: np.ndarray, k: np.ndarray, v: np.ndarray, mult: int,
                 shift: int, sink: int | None = None, recent: int | None = None,
                 max_chunk: int = 64, kv: int = 0, dataflow: str | None = None) -> None:
        q, k, v = (np.asarray(x) for x in (q, k, v))
        if q.ndim != 3 or k.ndim != 2 or q.shape[1:] != k.shape or v.ndim != 2 \
                or v.shape[0] != k.shape[0]:
            raise ValueError(f"q {q.shape}, k {k.shape}, v {v.shape}: expected (G, T, D), "
                             "(T, D), (T, Dv)")
        self.arch = arch
        self.steps = duo_steps(arch, *q.shape, v.shape[1], mult, shift, sink, recent,
                               max_chunk, kv, dataflow)
        st = self.steps
        self.kv, self.mult, self.shift, self.window = kv, mult, shift, st.window
        self.g, self.t, self.d, self.dv = st.g, st.t, st.d, st.dv
        self.index, self.max_chunk, self.lay, self.addr = st.index, max_chunk, st.lay, st.addr
        self.machine = Machine(arch, st.addr[4])
        for base, x in zip(st.addr, (q, k, v), strict=False):
            self.machine.write_dram(base, pack(x, arch.types[0]))
        self.length = 0
        #: the cache's reset, run on construction (the steps' programs follow it)
        self.reset_program = [unit_command("kv_cache", "reset", src=sink or 0, dst=recent or 0,
                                           rows=1, kv=kv)]
        self.machine.run(self.reset_program)

    @staticmethod
    def largest_chunk(arch: ArchSpec, g: int, t: int, d: int, dv: int,
                      window: tuple[int, int] | None = None, limit: int = 4095,
                      dataflow: str | None = None) -> int:
        """The largest ``max_chunk`` (<= ``limit``) with which such a head fits ``arch``'s
        memories; 0 if none does (a chunk of any size is exact: golden's outputs do not
        depend on the chunking)."""
        _, edge = chain_dataflow(arch, dataflow, "attention-head")
        cap = t if window is None else sum(window)
        return next((c for c in range(min(limit, t), 0, -1)
                     if _layout(arch, edge, g, cap, d, dv, c) is not None), 0)

    def step(self, c: int) -> np.ndarray:
        """Run the next ``c`` tokens (one program); their outputs, int64 (G, c, Dv)."""
        program = self.program(c)
        self.machine.run(program)
        self.last_program = program
        c_t, ob = self.arch.types[2], self.arch.types[2].bits // 8
        out = np.empty((self.g, c, self.dv), dtype=np.int64)
        for g in range(self.g):
            addr = self.addr[3] + (g * self.t + self.length) * self.dv * ob
            out[g] = unpack(self.machine.read_dram(addr, c * self.dv * ob), c * self.dv,
                            c_t).reshape(c, self.dv)
        self.length += c
        return out

    def program(self, c: int) -> list[Instruction]:
        """The checked program of the next ``c`` tokens (module docstring)."""
        return duo_step_program(self.arch, self.steps, self.length, c)
