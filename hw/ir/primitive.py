"""The primitive-level DAG the LEGO back end pipelines: operators, registers, ports, constants.

A :class:`PrimitiveGraph` holds :class:`Node` s (one output each, ``width`` bits, a combinational
``delay`` in abstract units) and :class:`Edge` s (``src`` output -> ``dst`` input, ``width`` bits,
a slice of the source's output). It is a DAG except through ``"register"`` nodes: a cycle is
allowed only if it passes through at least one register, because a register ends every timing
path into it and starts a fresh one at its output.

Timing model. A *combinational path* is a sequence of nodes ``v0 -> v1 -> ... -> vk`` joined by
edges whose interior nodes ``v1 .. v(k-1)`` are not registers; its delay is
``sum_i delay(v_i)`` (registers, constants, inputs and outputs default to delay 0).
:meth:`PrimitiveGraph.longest_path` is the largest such delay, the critical path.

Structural rules enforced by :meth:`PrimitiveGraph.add_edge` (``ValueError`` otherwise): both
ends exist; at most one edge per ``(src, dst)`` pair; ``input`` and ``const`` nodes have no
in-edges, ``output`` and ``mem_write`` nodes no out-edges; ``1 <= width <= src.width``; and no
combinational cycle. The cycle check is incremental (Pearce-Kelly dynamic topological order of
the non-register nodes), so building a graph in dependency order costs O(1) per edge. Every
edge also has a ``port``, its operand position at ``dst``: two in-edges of one node never share
one, and :meth:`PrimitiveGraph.in_edges` lists them by port.

Semantics. Every value is a bit pattern of its node's ``width``; an edge hands its consumer the
low ``edge.width`` bits of its source, sign-extended when the *source* is ``signed``; every
operator truncates its exact result to its own width. What each kind computes, its default
delay and its in-edge count are one row each of :data:`hw.ir.kinds.KIND_TABLE` (the semantics
table is in :mod:`hw.ir.kinds`; :data:`DEFAULT_DELAY`, :data:`ARITY` and :data:`KINDS` are
re-exported here); :func:`hw.ir.graph_sim.simulate_graph` executes them.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass

from .kinds import ARITY, DEFAULT_DELAY, KINDS

__all__ = ["ARITY", "DEFAULT_DELAY", "KINDS", "Edge", "Node", "PrimitiveGraph"]

_NO_DELAY_KINDS = ("register", "const")         # their delay must stay 0
_NO_INPUTS = ("input", "const")
_NO_OUTPUTS = ("output", "mem_write")


@dataclass(frozen=True)
class Node:
    """One primitive: ``kind`` in :data:`KINDS`, ``width`` output bits (a positive int) and a
    combinational ``delay`` >= 0 (``None``: the kind's :data:`DEFAULT_DELAY`). Registers and
    constants have delay 0 (a register's clock-to-output time belongs to the stage budget).
    ``signed``: consumers sign-extend what they read from this node. ``value``: a constant's
    value, a register's initial value (both within ``-2**(width-1) .. 2**width - 1``, either
    encoding of ``width`` bits), a shift's amount (left if >= 0, else right), a clamp's
    saturation width (``1 .. width``), a recip's scale exponent (``0 .. 62``); unused
    otherwise. ``table``: a rom's contents (non-empty, every entry an int in either encoding of
    ``width`` bits; a list is stored as a tuple), empty for every other kind."""

    name: str
    kind: str
    width: int
    delay: float | None = None
    signed: bool = False
    value: int = 0
    table: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"node name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"node {self.name}: unknown kind {self.kind!r} "
                             f"(one of {sorted(KINDS)})")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"node {self.name}: width must be a positive int, got {self.width!r}")
        delay = DEFAULT_DELAY[self.kind] if self.delay is None else self.delay
        if not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"node {self.name}: delay must be finite and >= 0, got {delay!r}")
        if self.kind in _NO_DELAY_KINDS and delay != 0:
            raise ValueError(f"node {self.name}: a {self.kind} has delay 0, got {delay!r}")
        if not isinstance(self.signed, bool):
            raise ValueError(f"node {self.name}: signed must be a bool, got {self.signed!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise ValueError(f"node {self.name}: value must be an int, got {self.value!r}")
        if self.kind in ("const", "register") and not _fits(self.value, self.width):
            raise ValueError(f"node {self.name}: value {self.value} does not fit "
                             f"{self.width} bits")
        if self.kind == "clamp" and not 1 <= self.value <= self.width:
            raise ValueError(f"node {self.name}: a clamp saturates to 1 .. {self.width} bits "
                             f"(its width), got value {self.value}")
        if self.kind == "recip" and not 0 <= self.value <= 62:
            raise ValueError(f"node {self.name}: a recip's scale exponent (value) must be in "
                             f"0 .. 62, got {self.value}")
        object.__setattr__(self, "table", self._checked_table())
        object.__setattr__(self, "delay", float(delay))

    def _checked_table(self) -> tuple[int, ...]:
        if not isinstance(self.table, (tuple, list)):
            raise ValueError(f"node {self.name}: table must be a tuple of ints, "
                             f"got {type(self.table).__name__}")
        table = tuple(self.table)
        if self.kind != "rom":
            if table:
                raise ValueError(f"node {self.name}: only a rom has a table, not a {self.kind}")
            return table
        if not table:
            raise ValueError(f"node {self.name}: a rom needs a non-empty table")
        for i, entry in enumerate(table):
            if isinstance(entry, bool) or not isinstance(entry, int):
                raise ValueError(f"node {self.name}: table[{i}] must be an int, got {entry!r}")
            if not _fits(entry, self.width):
                raise ValueError(f"node {self.name}: table[{i}] = {entry} does not fit "
                                 f"{self.width} bits")
        return table


def _fits(value: int, width: int) -> bool:
    """Whether ``value`` is either encoding of a ``width``-bit pattern."""
    return -(1 << (width - 1)) <= value < 1 << width


@dataclass(frozen=True)
class Edge:
    """The low ``width`` bits of the output of ``src`` into operand ``port`` of ``dst``."""

    src: str
    dst: str
    width: int
    port: int


class PrimitiveGraph:
    """A primitive-level netlist; see the module docstring for the rules it enforces."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._edges: dict[tuple[str, str], Edge] = {}
        self._out: dict[str, list[Edge]] = {}
        self._in: dict[str, list[Edge]] = {}
        self._ord: dict[str, int] = {}      # a topological rank of the non-register nodes

    def __repr__(self) -> str:
        return f"PrimitiveGraph({len(self._nodes)} nodes, {len(self._edges)} edges)"

    # ---------------------------------------------------------------- construction
    def add_node(self, name: str, kind: str, width: int, delay: float | None = None,
                 signed: bool = False, value: int = 0, table: tuple[int, ...] = ()) -> Node:
        """Add and return a node; ``ValueError`` for a duplicate name or a bad field."""
        if name in self._nodes:
            raise ValueError(f"duplicate node name {name!r}")
        node = Node(name, kind, width, delay, signed, value, table)
        self._nodes[name] = node
        self._out[name] = []
        self._in[name] = []
        self._ord[name] = len(self._ord)
        return node

    def add_edge(self, src: str, dst: str, width: int | None = None,
                 port: int | None = None) -> Edge:
        """Add and return the edge ``src -> dst`` (``width`` defaults to ``src``'s width,
        ``port`` to the number of in-edges ``dst`` already has).

        ``ValueError`` for an unknown node, a repeated ``(src, dst)`` pair, an edge into an
        input/const or out of an output/mem_write, a width outside ``[1, src.width]``, a port
        that is not an int >= 0 or is already taken at ``dst``, or an edge that would close a
        cycle without a register on it (the graph is left unchanged).
        """
        for end in (src, dst):
            if end not in self._nodes:
                raise ValueError(f"edge {src} -> {dst}: unknown node {end!r}")
        s, d = self._nodes[src], self._nodes[dst]
        if (src, dst) in self._edges:
            raise ValueError(f"duplicate edge {src} -> {dst}")
        if d.kind in _NO_INPUTS:
            raise ValueError(f"edge {src} -> {dst}: a {d.kind} node has no inputs")
        if s.kind in _NO_OUTPUTS:
            raise ValueError(f"edge {src} -> {dst}: a {s.kind} node has no outputs")
        width = s.width if width is None else width
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= s.width:
            raise ValueError(f"edge {src} -> {dst}: width must be an int in [1, {s.width}], "
                             f"got {width!r}")
        taken = [e.port for e in self._in[dst]]
        port = len(taken) if port is None else port
        if isinstance(port, bool) or not isinstance(port, int) or port < 0:
            raise ValueError(f"edge {src} -> {dst}: port must be an int >= 0, got {port!r}")
        if port in taken:
            raise ValueError(f"edge {src} -> {dst}: port {port} of {dst} is already taken")
        if s.kind != "register" and d.kind != "register":
            self._keep_order(src, dst)
        edge = Edge(src, dst, width, port)
        self._edges[(src, dst)] = edge
        self._out[src].append(edge)
        self._in[dst].insert(bisect.bisect(taken, port), edge)
        return edge

    def _keep_order(self, src: str, dst: str) -> None:
        """Pearce-Kelly: keep ``_ord`` a topological order of the non-register subgraph with
        the new edge ``src -> dst`` added, or raise if that edge closes a cycle there."""
        lo, hi = self._ord[dst], self._ord[src]
        if lo > hi:
            return
        forward = self._region(dst, hi, forward=True)
        if src in forward or src == dst:
            raise ValueError(f"edge {src} -> {dst} closes a combinational cycle "
                             "(a cycle must pass through a register)")
        backward = self._region(src, lo, forward=False)
        moved = sorted(backward, key=self._ord.get) + sorted(forward, key=self._ord.get)
        for name, rank in zip(moved, sorted(self._ord[n] for n in moved), strict=True):
            self._ord[name] = rank

    def _region(self, start: str, bound: int, *, forward: bool) -> set[str]:
        """Non-register nodes reachable from ``start`` (along or against edges) whose rank stays
        ``<= bound`` (forward) or ``>= bound`` (backward)."""
        seen, stack = {start}, [start]
        while stack:
            for edge in (self._out if forward else self._in)[stack.pop()]:
                nxt = edge.dst if forward else edge.src
                rank = self._ord[nxt]
                inside = rank <= bound if forward else rank >= bound
                if nxt not in seen and inside and self._nodes[nxt].kind != "register":
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def copy(self) -> PrimitiveGraph:
        """An independent graph with the same nodes and edges (same orders, same ports)."""
        out = PrimitiveGraph()
        out._nodes = dict(self._nodes)
        out._edges = dict(self._edges)
        out._out = {name: list(edges) for name, edges in self._out.items()}
        out._in = {name: list(edges) for name, edges in self._in.items()}
        out._ord = dict(self._ord)
        return out

    # ---------------------------------------------------------------- queries
    @property
    def nodes(self) -> dict[str, Node]:
        """Name -> node, in insertion order (a copy)."""
        return dict(self._nodes)

    @property
    def edges(self) -> list[Edge]:
        """All edges in insertion order (a copy)."""
        return list(self._edges.values())

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def edge(self, src: str, dst: str) -> Edge:
        return self._edges[(src, dst)]

    def in_edges(self, name: str) -> list[Edge]:
        """The edges into ``name``, by port."""
        return list(self._in[name])

    def out_edges(self, name: str) -> list[Edge]:
        return list(self._out[name])

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def topological_order(self) -> list[str]:
        """All node names, every edge whose source is not a register pointing forward (so, if
        the graph has no cycle, every edge). Deterministic: among ready nodes the earliest
        added comes first; a node whose remaining in-edges all come from registers (it sits on
        a register cycle) is released only when nothing else is ready."""
        rank = {name: i for i, name in enumerate(self._nodes)}
        pending = {n: len(self._in[n]) for n in self._nodes}
        comb = {n: sum(self._nodes[e.src].kind != "register" for e in self._in[n])
                for n in self._nodes}
        ready = [rank[n] for n in self._nodes if pending[n] == 0]
        release = [rank[n] for n in self._nodes if comb[n] == 0 and pending[n] > 0]
        heapq.heapify(ready)
        heapq.heapify(release)
        names, order, done = list(self._nodes), [], set()
        while len(order) < len(names):
            heap = ready if ready else release
            name = names[heapq.heappop(heap)]
            if name in done:
                continue
            done.add(name)
            order.append(name)
            is_reg = self._nodes[name].kind == "register"
            for edge in self._out[name]:
                pending[edge.dst] -= 1
                if pending[edge.dst] == 0:
                    heapq.heappush(ready, rank[edge.dst])
                if not is_reg:
                    comb[edge.dst] -= 1
                    if comb[edge.dst] == 0 and pending[edge.dst] > 0:
                        heapq.heappush(release, rank[edge.dst])
        return order

    def longest_path(self) -> tuple[float, list[str]]:
        """The critical combinational path: ``(delay, names)``, with ``delay`` the largest sum of
        node delays along a path whose interior nodes are not registers, and ``names`` one such
        path (it may start and end at a register; among equal delays the one ending last in
        :meth:`topological_order`). ``(0.0, [])`` for an empty graph.

        ``arrival(v) = delay(v) + max(0, max over in-edges u -> v of out(u))`` with
        ``out(u) = 0`` for a register and ``arrival(u)`` otherwise; one pass in
        :meth:`topological_order`."""
        arrival: dict[str, float] = {}
        best_pred: dict[str, str | None] = {}
        for name in self.topological_order():
            top, pred = 0.0, None
            for edge in self._in[name]:
                src = self._nodes[edge.src]
                out = 0.0 if src.kind == "register" else arrival.get(edge.src, 0.0)
                if pred is None or out > top:
                    top, pred = out, edge.src
            arrival[name] = self._nodes[name].delay + top
            best_pred[name] = pred
        if not arrival:
            return 0.0, []
        end = ""
        for name, value in arrival.items():         # the last of equals: run on to the sink
            if not end or value >= arrival[end]:
                end = name
        path = [end]
        while (pred := best_pred[path[-1]]) is not None:
            path.append(pred)
            if self._nodes[pred].kind == "register":
                break
        return arrival[end], path[::-1]

    def strong_components(self) -> dict[str, int]:
        """Strongly connected component id per node (Kosaraju, iterative): nodes on a common
        cycle, which in this graph always passes through a register, share an id."""
        finished, seen = [], set()
        for root in self._nodes:
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, iter(self._out[root]))]
            while stack:
                name, edges = stack[-1]
                nxt = next((e.dst for e in edges if e.dst not in seen), None)
                if nxt is None:
                    finished.append(name)
                    stack.pop()
                else:
                    seen.add(nxt)
                    stack.append((nxt, iter(self._out[nxt])))
        comp: dict[str, int] = {}
        count = 0
        for root in reversed(finished):
            if root not in comp:
                cid, todo, count = count, [root], count + 1
                comp[root] = cid
                while todo:
                    for e in self._in[todo.pop()]:
                        if e.src not in comp:
                            comp[e.src] = cid
                            todo.append(e.src)
        return comp

    def register_bits(self) -> int:
        """Total width of the ``"register"`` nodes."""
        return sum(n.width for n in self._nodes.values() if n.kind == "register")
