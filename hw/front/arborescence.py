"""Minimum spanning arborescence (Chu-Liu/Edmonds) for choosing each FU's operand source.

The interconnect generator builds, per tensor, a directed graph over the FUs plus a memory node
(edge cost = register bits + wires) and asks for the cheapest way to feed every FU from exactly
one source. That is a minimum spanning arborescence rooted at the memory node.

Contract of :func:`minimum_arborescence`:

* every node except ``root`` gets exactly one parent; parent links form a tree rooted at
  ``root`` (no cycles) of minimal total cost;
* parallel edges are allowed (the cheapest is kept, the first given among equals); self-loops
  and edges into ``root`` are ignored (but still validated);
* deterministic: ties are broken by the order the edges were given, never by hashing, so the
  same input in the same order gives the same output in any process;
* O(E log E): Tarjan's formulation, walking from each node along cheapest in-edges and
  contracting a cycle as soon as the walk closes one (mergeable heaps of in-edges with a lazy
  offset, union-find that can be rolled back to expand the cycles again). When the greedy
  choice (cheapest in-edge per node) has no cycle, nothing is contracted and the cost is one
  heapify and one pop per node.

Costs are compared with the arithmetic of the values given: integer costs are exact; float costs
are exact up to the rounding of the cost differences formed during contraction.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable, Sequence
from numbers import Real

__all__ = ["minimum_arborescence"]


def minimum_arborescence(
    nodes: Sequence[Hashable],
    edges: Iterable[tuple[Hashable, Hashable, float]],
    root: Hashable,
) -> dict[Hashable, tuple[Hashable, float]]:
    """Cheapest spanning arborescence of ``nodes`` rooted at ``root``.

    Returns ``{node: (parent, cost)}`` for every node except ``root``, in the order of ``nodes``,
    where ``cost`` is the cost of the chosen edge exactly as given.

    Raises :class:`ValueError` if ``root`` is not in ``nodes``, a node is listed twice, an edge
    names a node not in ``nodes``, a cost is NaN, infinite or negative, or some nodes cannot be
    reached from ``root`` (they are named). Raises :class:`TypeError` for a non-numeric cost.
    """
    index = _index_nodes(nodes, root)
    r = index[root]
    n = len(index)
    src, dst, cost, given = _validated_edges(edges, index, r)
    _check_reachable(root, index, r, src, dst)

    chosen = _edmonds(n, r, src, dst, cost)     # per node: an edge index, -1 for the root
    ordered = list(index)
    return {ordered[v]: (ordered[src[e]], given[e]) for v, e in enumerate(chosen) if v != r}


def _index_nodes(nodes: Sequence[Hashable], root: Hashable) -> dict[Hashable, int]:
    index: dict[Hashable, int] = {}
    for node in nodes:
        if node in index:
            raise ValueError(f"node {node!r} is listed twice")
        index[node] = len(index)
    if root not in index:
        raise ValueError(f"root {root!r} is not one of the nodes")
    return index


def _validated_edges(edges, index: dict[Hashable, int], r: int):
    """Check every edge; keep the cheapest (first among equals) of each useful (u, v) pair.

    Returns parallel lists (src, dst, float cost, cost as given), in input order of the kept
    edges, so that a position in these lists is the tie-breaking rank of the edge.
    """
    best: dict[tuple[int, int], tuple[float, int, object]] = {}   # (u, v) -> (cost, pos, given)
    for pos, edge in enumerate(edges):
        try:
            u, v, c = edge
        except (TypeError, ValueError):
            raise ValueError(f"edge #{pos} must be (source, target, cost), got {edge!r}") from None
        for end in (u, v):
            if end not in index:
                raise ValueError(f"edge #{pos} {u!r} -> {v!r} names unknown node {end!r}")
        if isinstance(c, bool) or not isinstance(c, Real):
            raise TypeError(f"edge #{pos} {u!r} -> {v!r} has a non-numeric cost {c!r}")
        fc = float(c)
        if math.isnan(fc) or math.isinf(fc) or fc < 0:
            raise ValueError(f"edge #{pos} {u!r} -> {v!r} has cost {c!r}; costs must be finite "
                             f"and non-negative")
        iu, iv = index[u], index[v]
        if iu == iv or iv == r:
            continue
        # Integer costs stay integers so that contraction arithmetic is exact.
        key_cost = c if isinstance(c, int) else fc
        old = best.get((iu, iv))
        if old is None or key_cost < old[0]:
            best[(iu, iv)] = (key_cost, pos, c)
    kept = sorted(best.items(), key=lambda item: item[1][1])
    return ([u for (u, _), _ in kept], [v for (_, v), _ in kept],
            [c for _, (c, _, _) in kept], [g for _, (_, _, g) in kept])


def _check_reachable(root, index, r: int, src: list[int], dst: list[int]) -> None:
    succ: list[list[int]] = [[] for _ in index]
    for u, v in zip(src, dst, strict=True):
        succ[u].append(v)
    seen = [False] * len(index)
    seen[r] = True
    stack = [r]
    while stack:
        for v in succ[stack.pop()]:
            if not seen[v]:
                seen[v] = True
                stack.append(v)
    missing = [node for node, i in index.items() if not seen[i]]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(f"{len(missing)} node(s) cannot be reached from root {root!r}: "
                         f"{shown}{more}")


class _RollbackUnionFind:
    """Union by size without path compression, so that unions can be undone in LIFO order."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n
        self.history: list[int] = []

    def find(self, v: int) -> int:
        parent = self.parent
        while parent[v] != v:
            v = parent[v]
        return v

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        self.history.append(b)
        return a

    def rollback(self, length: int) -> None:
        while len(self.history) > length:
            b = self.history.pop()
            a = self.parent[b]
            self.size[a] -= self.size[b]
            self.parent[b] = b


def _edmonds(n: int, r: int, src: list[int], dst: list[int], cost: list) -> list[int]:
    """Chosen in-edge (index into ``src``/``dst``) per node; -1 for the root.

    Every node must be reachable from ``r``. Each supernode (a set of contracted nodes) keeps a
    heap of its in-edges ``(cost - offset, rank, edge)``, where ``offset`` is the supernode's
    total reduction so far; ``rank`` (the edge index) breaks ties in input order.
    """
    heaps: list[list] = [[] for _ in range(n)]
    for e in range(len(src)):
        heaps[dst[e]].append((cost[e], e))
    for h in heaps:
        heapq.heapify(h)
    offset = [0] * n                  # the supernode's heap holds (cost - offset[rep], rank)
    uf = _RollbackUnionFind(n)
    pick = [-1] * n                   # per supernode representative: its latest in-edge
    state = [0] * n                   # 0 unvisited, 1 on the current path, 2 attached to root
    state[r] = 2
    where: list[int] = [0] * n        # position of a supernode on the current path
    events: list[tuple[int, list[int]]] = []   # contractions: (union history length, cycle)

    for start in range(n):
        u = uf.find(start)
        path: list[int] = []
        while state[u] != 2:
            heap = heaps[u]
            while True:               # cheapest in-edge from outside the supernode
                c, e = heapq.heappop(heap)
                if uf.find(src[e]) != u:
                    break
            c += offset[u]
            offset[u] -= c            # other in-edges now cost relative to this one
            pick[u] = e
            state[u] = 1
            where[u] = len(path)
            path.append(u)
            v = uf.find(src[e])
            if state[v] != 1:
                u = v
                continue
            # Cycle v -> ... -> u -> v: contract it into one supernode.
            cycle = path[where[v]:]
            del path[where[v]:]
            events.append((len(uf.history), [pick[w] for w in cycle]))
            big = max(cycle, key=lambda w: len(heaps[w]))
            merged, base = heaps[big], offset[big]
            for w in cycle:
                if w != big:
                    shift = offset[w] - base
                    for c, e in heaps[w]:
                        heapq.heappush(merged, (c + shift, e))
                    heaps[w] = []
            for w in cycle:
                uf.union(cycle[0], w)
            u = uf.find(cycle[0])
            heaps[u], offset[u] = merged, base
            state[u] = 0
        for w in path:
            state[w] = 2

    # Undo the contractions, newest first: the edge entering a cycle's supernode enters one of
    # its members; every other member keeps the edge it picked inside the cycle.
    for length, cycle_edges in reversed(events):
        entering = pick[uf.find(dst[cycle_edges[0]])]
        uf.rollback(length)
        for e in cycle_edges:
            pick[uf.find(dst[e])] = e
        pick[uf.find(dst[entering])] = entering
    pick[r] = -1
    return pick
