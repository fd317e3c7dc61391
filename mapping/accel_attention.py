"""What an attention operator costs on a generated accelerator with the fused attention units
(requant, softmax, normalizer and kv_cache, whose descriptors the softmax reads its mask from;
requant, normalizer and operand ReLU for linear attention): the kernels' own programs, timed
by the cycle model (equal to the RTL's cycles) and counted by
:func:`~hw.front.program_cost.program_cost` (:func:`attention_cost`).

**Lowering** of an :class:`~mapping.ir.Attention` of ``B`` batch elements, ``H`` query heads,
``Hkv`` KV heads (group ``g = H / Hkv``), head dim ``d`` (values too), ``Q`` queries, the last
of ``K`` positions: one program per KV head and batch element with its ``g`` query heads
together (``repeat = B Hkv``), by the mask:

* **streaming** (``window = (sink, recent)``): the DuoAttention head with its ring cache
  resident in the scratchpad (:mod:`hw.front.kernel_duo`), in steps of the largest chunk
  ``c`` that fits (at most ``Q``) at positions ``L = K - Q, L + c, ..``: each step attends
  over the ``sink + recent`` cached slots and its own chunk, then writes the chunk's
  surviving tokens into the ring (a decode is one step of one token over a full cache);
* **retrieval** (causal, no window): :mod:`hw.front.kernel_duo_long`'s query tiles with the
  keys and values streamed from DRAM in blocks of ``kb`` (the largest that fits), twice (the
  row max, then the weights): a decode is one tile of one token over ``K`` keys, a prefill
  is tiles of :func:`~hw.front.kernel_duo_long.default_tile` tokens, each over the keys
  before it in blocks and its own as one causal block;
* **non-causal** (FLUX.1's joint attention, Sana's cross-attention): the same tiles with
  ``causal=False``, each over all ``K`` keys in blocks.

A :class:`~mapping.ir.LinearAttention` (``B`` x ``heads`` heads of ``N`` tokens) is one
:func:`~hw.front.kernel_attention.linear_attention_program` per head, always timed whole (the
cycle model skips its repeating key tiles: 16k tokens in about 0.3 s).

Formats: the kernels take int8 codes (``fmt`` and ``kv_fmt`` int8; else :class:`Unmappable`:
a precision policy upstream converts); the output leaves as the normalizer's int32 codes.
``macs`` counts what the array performs: the logits twice (two passes) for tiles, whole key
blocks (a causal block's masked half, a ring's empty slots), the weights' sums ``P 1``; the
IR's ``macs`` (visible pairs) is in a note.

**Exact or composed.** A program of fewer than ``exact_below`` MACs (the op's per program)
is built whole (every tile or step, one after the other) and timed: ``exact = True``. A
larger one is composed from short programs, equal to the whole one's cycles and counts
(``tests/mapping/test_accel_attention.py`` holds them equal at moderate sizes)::

    cycles(P_1 .. P_n) = sum_i cycles(P_i) - sum_i junction(P_i, P_i+1)
    tile of n > 3 key blocks (the last of r keys)                                   (*)
                 f(n, r) = f(2, r) + (n - 2) (f(3, 1) - f(2, 1))

It rests on one property of the cycle model: a workload-unit command waits until the array,
the DMA and the units are idle, and nothing issues while it runs, so a program's cycles are
the sums of its stretches between unit commands, each timed alone. The kernels issue one at
least per key block (requant, softmax), per step and per tile, so: a middle key block of
``kb`` keys costs the same wherever it is (*); the junction of two programs (the tail after
the first's last unit command overlapping the head before the second's first) depends on
those stretches only, taken from the two programs cut to one key block; equal programs
(tiles of equal extents, steps of equal chunks whose ring slots fall alike into the cache's
rows: the one position-dependent hazard) cost the same, so each is timed once. Counts are
sums over instructions: exactly linear.

Layer: mapping (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from hw.front.arch import ArchSpec
from hw.front.isa import Instruction
from hw.front.kernel_attention import linear_attention_operands, linear_attention_program
from hw.front.kernel_chain import blocks, chain_dataflow
from hw.front.kernel_duo import DuoHead, DuoSteps, cache_slots, duo_step_program, duo_steps
from hw.front.kernel_duo_long import (
    LongAttention,
    long_attention_program,
    query_tiles,
    query_tiling,
    tile_addresses,
)
from hw.front.spec_model import SpecError

from .energy import EnergyTable
from .ir import Attention, LinearAttention, Op
from .op_cost import EXACT_BELOW, OpCost, Run, Unmappable, combine, priced, timed

__all__ = ["attention_cost", "clear_cache"]

_UNITS = {"long_attention": ("requant", "softmax", "normalizer", "kv_cache"),
          "duo_steps": ("requant", "softmax", "normalizer", "kv_cache"),
          "linear_attention": ("requant", "normalizer", "operand_relu")}


@dataclass(frozen=True)
class _Plan:
    """The programs of one head (run ``repeat`` times): ``pieces`` one after the other,
    LongAttention tiles or ``(position, chunk)`` steps of ``head``, or the linear-attention
    operands, on the dataflow of index ``dataflow``."""

    kernel: str
    dataflow: int
    pieces: tuple
    repeat: int
    head: DuoSteps | None = None
    schedule: dict[str, Any] = field(default_factory=dict, compare=False)
    notes: tuple[str, ...] = ()


def _int8(arch: ArchSpec, op: Op, names: tuple[str, ...]) -> None:
    for name in names:
        f = getattr(op, name)
        if not (f.kind == "int" and f.bits == 8 and not f.group):
            raise Unmappable(op, f"{name} is {f.name}: the attention kernels take int8 codes "
                                 "(a precision policy converts upstream)", arch.name)
    if arch.types[0].name != "int8":
        raise Unmappable(op, f"the attention kernels take int8 codes; the array multiplies "
                             f"{arch.types[0].name}", arch.name)


def _units(arch: ArchSpec, op: Op, kernel: str) -> None:
    missing = [u for u in _UNITS[kernel] if not getattr(arch.units, u)]
    if missing:
        raise Unmappable(op, f"the fused {kernel} kernel needs the {', '.join(_UNITS[kernel])} "
                             f"units; the architecture has no {', '.join(missing)} (a mapper "
                             "decomposes it into GEMMs and host vector work)", arch.name)


@lru_cache(maxsize=256)
def _tiling(arch: ArchSpec, g: int, d: int, queries: int) -> tuple[int, int]:
    """:func:`~hw.front.kernel_duo_long.query_tiling` of heads of ``d`` (values too),
    memoized."""
    return query_tiling(arch, g, d, d, queries)


def _long_plan(arch: ArchSpec, op: Attention, g: int) -> _Plan:
    d, q, k = op.head_dim, op.q_tokens, op.kv_tokens
    tile, kb = _tiling(arch, g, d, q)
    if not kb:
        raise Unmappable(op, f"a query tile of {g} head(s) of d={d} does not fit the "
                             "memories (not even with one array edge of keys a block)",
                         arch.name)
    tiles = query_tiles(g, q, k, d, d, 1, 0, tile, kb, op.causal, tile_addresses(g, q, k, d, d))
    index = chain_dataflow(arch, None, "long-context attention")[0]
    what = ("causal: each tile over the keys before it in blocks and its own as one causal "
            "block" if op.causal else "non-causal: each tile over all keys in blocks")
    return _Plan("long_attention", index, tuple(tiles), op.batch * op.kv_heads, schedule={
        "group": g, "tile": tile, "block": kb, "tiles": len(tiles), "queries": q, "keys": k,
        "causal": op.causal}, notes=(
        f"{len(tiles)} query tile(s) of {tile} token(s), keys and values streamed from DRAM "
        f"in blocks of {kb} twice (row max, then weights); {what}",))


def _duo_plan(arch: ArchSpec, op: Attention, g: int) -> _Plan:
    d, q, k, (sink, recent) = op.head_dim, op.q_tokens, op.kv_tokens, op.window
    chunk = DuoHead.largest_chunk(arch, g, k, d, d, op.window, limit=q)
    if not chunk:
        raise Unmappable(op, f"a streaming head of {sink} + {recent} cached tokens and {g} "
                             "query heads does not fit the memories", arch.name)
    head = duo_steps(arch, g, k, d, d, 1, 0, sink, recent, max_chunk=chunk)
    steps = tuple((k - q + s0, sn) for s0, sn in blocks(q, chunk))
    return _Plan("duo_steps", head.index, steps, op.batch * op.kv_heads, head, {
        "group": g, "chunk": chunk, "steps": len(steps), "queries": q, "keys": k,
        "window": (sink, recent)}, (
        f"{len(steps)} step(s) of {chunk} token(s) over the ring cache of {sink} + {recent} "
        "slots resident in the scratchpad",))


def _plan(arch: ArchSpec, op: Attention | LinearAttention) -> _Plan:
    """The head's programs (module docstring), or Unmappable."""
    if isinstance(op, LinearAttention):
        _int8(arch, op, ("fmt",))
        _units(arch, op, "linear_attention")
        ops = linear_attention_operands(arch, op.tokens, op.head_dim, op.head_dim)
        return _Plan("linear_attention", chain_dataflow(arch, None, "linear-attention")[0],
                     (ops,), op.batch * op.heads, schedule={"tokens": op.tokens})
    _int8(arch, op, ("fmt", "kv_fmt"))
    kernel = "duo_steps" if op.window else "long_attention"
    _units(arch, op, kernel)
    g = op.q_heads // op.kv_heads
    return _duo_plan(arch, op, g) if op.window else _long_plan(arch, op, g)


def _program(arch: ArchSpec, kernel: str, head: DuoSteps | None, piece: Any
             ) -> list[Instruction]:
    """The program of one piece of a plan of ``kernel`` (``head``: the steps' head)."""
    if kernel == "long_attention":
        return long_attention_program(arch, piece)
    if kernel == "duo_steps":
        return duo_step_program(arch, head, *piece)
    return linear_attention_program(arch, piece)


def _own(t: LongAttention) -> int:
    """The tile's own keys in its causal block (0: none)."""
    return t.c if t.causal and t.c > 1 else 0


def _bare(t: LongAttention) -> LongAttention:
    """``t`` less what does not change its timing or counts: DRAM addresses, its first token."""
    return replace(t, first=0, q=0, k=0, v=0, ones=0, out=0)


@lru_cache(maxsize=4096)
def _tile(arch: ArchSpec, t: LongAttention) -> Run:
    """One tile, whole up to three key blocks before its own, else by (*) (a middle block's
    cost taken with a last block of one key: the shortest programs)."""
    own, kb = _own(t), t.kb
    n = -(-(t.keys - own) // kb)
    if n <= 3:
        return timed(arch, long_attention_program(arch, t))
    last = t.keys - own - (n - 1) * kb
    return combine(arch, [(1, _tile(arch, replace(t, keys=own + kb + last))),
                          (n - 2, _tile(arch, replace(t, keys=own + 2 * kb + 1))),
                          (2 - n, _tile(arch, replace(t, keys=own + kb + 1)))])


def _cut(t: LongAttention) -> LongAttention:
    """``t`` cut to its first key block (and its own): the same head and tail stretches."""
    own = _own(t)
    return replace(t, keys=own + min(t.kb, t.keys - own))


@lru_cache(maxsize=1024)
def _joined(arch: ArchSpec, kernel: str, head: DuoSteps | None, a: Any, b: Any) -> int:
    """Cycles piece ``b`` saves run right after piece ``a`` (both whole programs)."""
    pa, pb = _program(arch, kernel, head, a), _program(arch, kernel, head, b)
    return timed(arch, pa)[0] + timed(arch, pb)[0] - timed(arch, pa + pb)[0]


def _slots_key(plan: _Plan, step: tuple[int, int]) -> Hashable:
    """A step's class: its chunk and which of its written ring slots share cache rows."""
    rows: dict[int, int] = {}
    e = plan.head.lay.edge
    return step[1], tuple(rows.setdefault(s // e, len(rows))
                          for _, s in cache_slots(plan.head, *step))


def _sequence(arch: ArchSpec, keys: list[Hashable], run: Callable[[Hashable], Run],
              junction: Callable[[Hashable, Hashable], int]) -> Run:
    """Pieces of classes ``keys`` one after the other: each class's run once, times its
    count, less each junction (module docstring)."""
    total = combine(arch, [(n, run(k)) for k, n in Counter(keys).items()])
    pairs = Counter(zip(keys, keys[1:], strict=False))
    saved = sum(n * junction(a, b) for (a, b), n in pairs.items())
    return total[0] - saved, total[1], total[2]


@lru_cache(maxsize=1024)
def _composed(arch: ArchSpec, plan: _Plan) -> Run:
    """The head's programs costed from short ones (module docstring)."""
    if plan.kernel == "long_attention":
        return _sequence(arch, [_bare(t) for t in plan.pieces], lambda t: _tile(arch, t),
                         lambda a, b: _joined(arch, plan.kernel, None, _cut(a), _cut(b)))
    first: dict[Hashable, tuple[int, int]] = {}        # a step of each class
    keys = [_slots_key(plan, s) for s in plan.pieces]
    for key, step in zip(keys, plan.pieces, strict=True):
        first.setdefault(key, step)
    return _sequence(arch, keys, lambda k: _step(arch, plan.head, first[k]),
                     lambda a, b: _joined(arch, plan.kernel, plan.head, first[a], first[b]))


@lru_cache(maxsize=1024)
def _step(arch: ArchSpec, head: DuoSteps, step: tuple[int, int]) -> Run:
    return timed(arch, duo_step_program(arch, head, *step))


def _schedule(plan: _Plan, op: Op, whole: bool) -> dict[str, Any]:
    sched = {"lowering": plan.kernel, "head_dim": op.head_dim, "repeat": plan.repeat,
             **plan.schedule}
    if not whole:
        sched["costed_from"] = ("short programs: key blocks, tiles or steps of each kind once, "
                                "their junctions (mapping.accel_attention)")
    return sched


@lru_cache(maxsize=1024)
def _costed(arch: ArchSpec, op: Attention | LinearAttention, exact_below: int
            ) -> tuple[_Plan, Run, bool]:
    try:
        plan = _plan(arch, op)
        whole = plan.kernel == "linear_attention" or op.macs // plan.repeat < exact_below
        if whole:
            run = timed(arch, [ins for p in plan.pieces
                               for ins in _program(arch, plan.kernel, plan.head, p)])
        else:
            run = _composed(arch, plan)
    except SpecError as exc:
        raise Unmappable(op, str(exc), arch.name) from exc
    return plan, run, whole


def attention_cost(arch: ArchSpec, op: Attention | LinearAttention, *,
                   exact_below: int = EXACT_BELOW, dataflows: tuple[str, ...] | None = None,
                   table: EnergyTable | None = None) -> OpCost:
    """The cost of ``op`` on ``arch``'s accelerator (module docstring): ``repeat`` programs of
    one head; whole and exact below ``exact_below`` MACs a program, composed above; energy
    from ``table`` (default: the 45 nm table). The kernels run on the first dataflow keeping
    i in time only, which ``dataflows`` (default: all) must name. :class:`Unmappable` for
    formats other than int8, missing units (naming them), a head that does not fit the
    memories, no such dataflow, or another kind of op. Memoized per shape; deterministic."""
    if not isinstance(op, (Attention, LinearAttention)):
        raise Unmappable(op, "not an attention or linear-attention op", arch.name)
    try:
        plan, run, whole = _costed(arch, replace(op, name="attention"), exact_below)
    except Unmappable as exc:                  # raised for the memo's nameless twin
        raise Unmappable(op, exc.reason, arch.name) from None
    flow = arch.dataflows[plan.dataflow].name
    if dataflows is not None and flow not in dataflows:
        raise Unmappable(op, f"the attention kernels run on {flow} (i in time only); given: "
                             f"{', '.join(dataflows)}", arch.name)
    notes = plan.notes + (
        f"one program per head of the batch: times {plan.repeat}" + (
            f", each with its group of {plan.schedule['group']} query heads"
            if "group" in plan.schedule else ""),
        f"the array performs {run[2].macs * plan.repeat} MACs for the op's {op.macs}",
        "int8 codes in, the normalizer's int32 codes out")
    out = priced(arch, flow, _schedule(plan, op, whole), run, plan.repeat, whole, notes, table)
    object.__setattr__(out, "op", op.name)
    return out


def clear_cache() -> None:
    """Forget memoized costs and tilings (for timing and tests)."""
    for memo in (_tiling, _tile, _joined, _composed, _step, _costed):
        memo.cache_clear()
