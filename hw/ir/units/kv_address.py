"""The KV-cache address generator of the streaming heads, exactly
:func:`golden.kv_cache.ring_buffer_address`, without a divider: a write-slot register stepped by
one per written token, wrapping from ``sink + recent - 1`` back to ``sink``.

A streaming head keeps its KV cache in ``sink + recent`` slots: position ``pos`` goes to slot
``pos`` if ``pos < sink``, else ``sink + (pos - sink) mod recent``. Per descriptor (one KV
head's cache) the unit holds two registers: ``count`` (the tokens written, i.e. the position
``n`` of the current token) and ``slot`` (its write slot). In a cycle, with the selected
descriptor's registers read (``desc``; ``reset`` reads them as 0: the cycle is position 0)::

    n = reset ? 0 : count;  w = reset ? 0 : slot;  end = sink + recent
    outputs:  count  = n
              slot   = retrieval ? n : w                       the current token's write slot
              oldest = retrieval ? 0 : (n >= end ? w : sink)   the oldest ring entry's slot
              held   = retrieval ? n : min(n, end)             the entries the cache holds
    advance:  count <- min(n + 1, 2**pos_bits - 1)
              slot  <- w < end - 1 ? w + 1 : sink              (wrap; below sink, w + 1 <= sink)
    else:     count <- n,  slot <- w                           (so a reset alone restarts)

``oldest`` is :meth:`golden.kv_cache.StreamingKVCache.slots_in_order`'s first ring slot: the
cache holds positions ``0 .. min(n, sink) - 1`` and ``max(sink, n - recent) .. n - 1``, and
``ring_buffer_address(max(sink, n - recent))`` is ``sink`` until the ring is full
(``n <= sink + recent``), then the slot the current token overwrites (``n - recent`` and ``n``
share a ring slot): the read order is the sinks, then the ring from ``oldest``, wrapping.
With no ring entry yet (``n <= sink``) it is ``sink``, where the ring will start. A
``retrieval`` descriptor addresses linearly (slot = position, no wrap; reading starts at 0).

Descriptors: ``descriptors`` register pairs in the graph, one per KV head cache, each with its
own step (increment, wrap compare, muxes: a feedback loop of 1.25 multiplier delays whatever
the descriptor count, so any stage budget >= 1.25 pipelines it); ``desc`` selects the
descriptor a cycle reads (a mux tree to the outputs) and, with ``advance`` or ``reset``,
updates (a ``rom`` one-hot decode); the others hold. ``sink``, ``recent`` and ``retrieval`` are
the selected descriptor's fields, registered outside per command (held constant here). A
``desc >= descriptors`` acts as the last descriptor.

Widths and the contract: ``sink``, ``recent`` are ``slot_bits`` wide with ``recent >= 1`` and
``sink + recent <= 2**slot_bits``; positions are ``pos_bits`` wide and ``count`` saturates at
``2**pos_bits - 1`` (positions beyond are out of contract; the ring slots keep stepping
correctly since they never read ``count``). Out of contract: ``recent = 0`` (golden rejects
it) leaves the write slot at ``sink`` once the sinks are written; changing ``sink``,
``recent`` or ``retrieval`` without a ``reset`` continues from the registers as they are.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..primitive import PrimitiveGraph
from .build import GraphBuilder

__all__ = ["KvAddressShape", "kv_address_graph"]


@dataclass(frozen=True)
class KvAddressShape:
    """What one address generator is built for (see the module docstring)."""

    descriptors: int = 1
    slot_bits: int = 16
    pos_bits: int = 32

    def __post_init__(self) -> None:
        for name, lo, hi in (("descriptors", 1, 256), ("slot_bits", 1, 32), ("pos_bits", 1, 48)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} must be an int in {lo}..{hi}")
        if self.pos_bits < self.slot_bits:
            raise ValueError(f"pos_bits={self.pos_bits} must be at least slot_bits="
                             f"{self.slot_bits} (a retrieval slot is a position)")

    @property
    def desc_bits(self) -> int:
        """Width of the ``desc`` input (1 for a single descriptor, which ignores it)."""
        return max((self.descriptors - 1).bit_length(), 1)


def _select(b: GraphBuilder, regs: list[str], sel_bits: list[str], width: int) -> str:
    """``regs[sel]`` by a mux tree on the bits of ``sel`` (LSB first); ``len(regs)`` need not
    be a power of two (the caller keeps ``sel`` in range)."""
    level = 0
    while len(regs) > 1:
        regs = [b.op("mux", width, sel_bits[level], regs[i + 1], regs[i])
                if i + 1 < len(regs) else regs[i] for i in range(0, len(regs), 2)]
        level += 1
    return regs[0]


def _step(b: GraphBuilder, regs: tuple[str, str], controls: tuple[str, str, str], sink: str,
          last: str) -> None:
    """Connect one descriptor's ``count`` and ``slot`` registers: stepped from their values
    (0 under ``reset``) when ``write``, cleared when ``clear``, else held. Each descriptor
    steps itself, so its feedback loop (mux, add, mux, mux) does not grow with the
    descriptor count."""
    (count, slot), (write, clear, reset) = regs, controls
    pb, sb = b.graph.node(count).width, b.graph.node(slot).width
    zero = b.const(0, 1, False)
    n = b.op("mux", pb, reset, zero, count)
    w = b.op("mux", sb, reset, zero, slot)
    step_n = b.op("min", pb, b.op("add", pb + 1, n, b.const(1)), b.const((1 << pb) - 1))
    step_w = b.op("mux", sb, b.op("compare", 1, w, last), b.op("add", sb + 1, w, b.const(1)),
                  sink)
    b.connect(b.op("mux", pb, write, step_n, b.op("mux", pb, clear, zero, count)), count)
    b.connect(b.op("mux", sb, write, step_w, b.op("mux", sb, clear, zero, slot)), slot)


def kv_address_graph(shape: KvAddressShape) -> PrimitiveGraph:
    """Inputs ``sink``, ``recent`` (``slot_bits``), ``retrieval``, ``reset``, ``advance`` (1
    bit each) and ``desc`` (``desc_bits``, only with several descriptors); outputs ``count``,
    ``slot``, ``held`` (``pos_bits``) and ``oldest`` (``slot_bits``) of the selected
    descriptor (module docstring)."""
    sb, pb, d = shape.slot_bits, shape.pos_bits, shape.descriptors
    b = GraphBuilder()
    sink, recent = b.input("sink", sb), b.input("recent", sb)
    retrieval, reset, advance = (b.input(n, 1) for n in ("retrieval", "reset", "advance"))
    counts, slots = [b.register(pb) for _ in range(d)], [b.register(sb) for _ in range(d)]
    if d > 1:
        sel = b.input("desc", shape.desc_bits)
        if d & (d - 1):                                 # not a power of two: clamp
            sel = b.op("min", shape.desc_bits, sel, b.const(d - 1))
        bits = [b.op("shift", 1, sel, value=-i) for i in range(shape.desc_bits)]
        hots = [b.op("rom", 1, sel, table=tuple(int(i == k) for i in range(d)))
                for k in range(d)]
        controls = [(b.op("mul", 1, hot, advance), b.op("mul", 1, hot, reset)) for hot in hots]
    else:
        bits, controls = [], [(advance, reset)]
    zero = b.const(0, 1, False)
    end = b.op("add", sb + 1, sink, recent)
    last = b.op("sub", sb + 2, end, b.const(1), signed=True)
    for (write, clear), count, slot in zip(controls, counts, slots, strict=True):
        _step(b, (count, slot), (write, clear, reset), sink, last)
    n = b.op("mux", pb, reset, zero, _select(b, counts, bits, pb))
    w = b.op("mux", sb, reset, zero, _select(b, slots, bits, sb))
    short = b.op("compare", 1, n, end)
    b.output("count", n)
    b.output("slot", b.op("mux", pb, retrieval, n, w))
    b.output("oldest", b.op("mux", sb, retrieval, zero, b.op("mux", sb, short, sink, w)))
    b.output("held", b.op("mux", pb, retrieval, n, b.op("min", pb, n, end)))
    return b.graph
