"""A small builder for the datapath graphs of the workload units, plus the fixed-point idioms
they share (rounding shifts, absolute value, saturation) written once in primitives.

Every helper adds nodes to one :class:`~hw.ir.primitive.PrimitiveGraph` under fresh names
``<prefix><kind><n>`` and returns the new node's name. Widths are given by the caller from the
bounds of the value the node holds (the docstring of each unit states them); a node narrower
than its exact result would wrap, so the units' tests check every node against the golden
model's intermediates where those are exposed.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from ..primitive import PrimitiveGraph

__all__ = ["GraphBuilder", "signed_bits"]


def signed_bits(lo: int, hi: int) -> int:
    """The fewest bits of a two's-complement integer holding every value in ``lo..hi``."""
    if lo > hi:
        raise ValueError(f"empty range {lo}..{hi}")
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length()) + 1


class GraphBuilder:
    """Adds nodes to ``graph`` with fresh names; every method returns the new node's name."""

    def __init__(self, graph: PrimitiveGraph | None = None, prefix: str = "") -> None:
        self.graph = PrimitiveGraph() if graph is None else graph
        self.prefix = prefix
        self._count = 0
        self._consts: dict[tuple[int, int, bool], str] = {}

    def _fresh(self, kind: str) -> str:
        self._count += 1
        return f"{self.prefix}{kind}{self._count}"

    def input(self, name: str, width: int, signed: bool = False) -> str:
        """An ``input`` node called ``prefix + name`` (the unit's port)."""
        self.graph.add_node(self.prefix + name, "input", width, signed=signed)
        return self.prefix + name

    def output(self, name: str, src: str, width: int | None = None) -> str:
        """An ``output`` node ``prefix + name`` observing ``src`` (its width by default)."""
        width = self.graph.node(src).width if width is None else width
        self.graph.add_node(self.prefix + name, "output", width)
        self.graph.add_edge(src, self.prefix + name, min(width, self.graph.node(src).width))
        return self.prefix + name

    def const(self, value: int, width: int | None = None, signed: bool | None = None) -> str:
        """A constant (shared between uses); width and signedness from the value by default."""
        signed = value < 0 if signed is None else signed
        width = (signed_bits(value, value) if signed else max(value.bit_length(), 1)) \
            if width is None else width
        key = (value, width, signed)
        if key not in self._consts:
            name = self._fresh("const")
            self.graph.add_node(name, "const", width, signed=signed, value=value)
            self._consts[key] = name
        return self._consts[key]

    def op(self, kind: str, width: int, *srcs: str, signed: bool = False, value: int = 0,
           table: tuple[int, ...] = ()) -> str:
        """An operator of ``kind`` on ``srcs`` (ports in order, full source widths)."""
        name = self._fresh(kind)
        if table:
            self.graph.add_node(name, kind, width, signed=signed, value=value, table=table)
        else:
            self.graph.add_node(name, kind, width, signed=signed, value=value)
        for src in srcs:
            self.graph.add_edge(src, name)
        return name

    def register(self, width: int, signed: bool = False, init: int = 0) -> str:
        """A register whose input the caller connects later with :meth:`connect`."""
        name = self._fresh("reg")
        self.graph.add_node(name, "register", width, signed=signed, value=init)
        return name

    def connect(self, src: str, dst: str) -> None:
        self.graph.add_edge(src, dst)

    def tree(self, kind: str, items: list[str], width: int, signed: bool = False) -> str:
        """A balanced tree of two-operand ``kind`` nodes (``add``, ``max``, ...) over
        ``items``, each ``width`` bits."""
        while len(items) > 1:
            items = [self.op(kind, width, *items[i:i + 2], signed=signed)
                     if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
        return items[0]

    def running(self, kind: str, value: str, restart: str, start: int, width: int,
                signed: bool = False) -> str:
        """A register folding ``value`` in with ``kind`` every cycle, from ``start`` again in a
        cycle where ``restart`` is 1: ``reg <- kind(restart ? start : reg, value)``. Returns
        the register (its output: the fold of the earlier cycles)."""
        reg = self.register(width, signed=signed, init=start)
        base = self.op("mux", width, restart, self.const(start, width, signed), reg,
                       signed=signed)
        self.connect(self.op(kind, width, base, value, signed=signed), reg)
        return reg

    # ------------------------------------------------------------------ fixed-point idioms
    def round_shift_right(self, x: str, shift: int, width: int, signed: bool = True) -> str:
        """``golden.fixed_point.round_shift_right(x, shift)`` for a constant ``shift``:
        ``(x + 2**(shift-1)) >> shift`` (ties toward +inf)."""
        if shift == 0:
            return x
        xw = self.graph.node(x).width
        total = self.op("add", xw + 1, x, self.const(1 << (shift - 1)), signed=signed)
        return self.op("shift", width, total, signed=signed, value=-shift)

    def round_shift_right_var(self, x: str, shift: str, width: int, signed: bool = True) -> str:
        """``round_shift_right(x, shift)`` for a run-time ``0 <= shift <= width(x) + 1``
        (the caller caps larger shifts, which round every value alike):
        ``(x + ((1 << shift) >> 1)) >> shift``."""
        xw = self.graph.node(x).width
        one = self.op("shl_var", xw + 2, self.const(1), shift)
        half = self.op("shift", xw + 1, one, value=-1)
        total = self.op("add", xw + 2, x, half, signed=signed)
        return self.op("shr_var", width, total, shift, signed=signed)

    def abs(self, x: str) -> str:
        """``|x|`` of a signed node, unsigned, as wide as ``x``."""
        w = self.graph.node(x).width
        neg = self.op("sub", w + 1, self.const(0), x, signed=True)
        return self.op("max", w, x, neg)

    def saturate(self, x: str, bits: int, signed: bool = True) -> str:
        """``golden.fixed_point.saturate(x, bits, signed)``: a ``clamp`` of ``bits`` bits."""
        return self.op("clamp", bits, x, signed=signed, value=bits)
