"""Function-preserving back-end passes on a :class:`~hw.primitive.PrimitiveGraph`.

Each pass returns a new graph and leaves its argument alone; for the same stimulus the new
graph's outputs equal the old one's cycle for cycle (:mod:`hw.primitive` semantics, checked by
:func:`hw.graph_sim.simulate_graph` in the tests). New nodes are named after the nodes they
replace or serve, so the same input graph always gives the same output graph; a generated name
that is already taken is a ``ValueError``.

* :func:`split_fanout` replaces a wide broadcast by a balanced tree of ``buf`` nodes.
* :func:`extract_reduction_trees` rebuilds chains of adders as balanced (earliest-first) trees.
* :func:`propagate_constants` specialises a graph to fixed inputs and drops dead logic.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .graph_sim import check_graph, evaluate, read_operand
from .primitive import Edge, Node, PrimitiveGraph

__all__ = ["extract_reduction_trees", "propagate_constants", "split_fanout"]


def split_fanout(graph: PrimitiveGraph, max_fanout: int) -> PrimitiveGraph:
    """Every node ``u`` driving ``d > max_fanout`` edges drives them through a balanced tree of
    ``buf`` nodes ``u/fan{level}_{i}`` (level 1 next to ``u``): ``k`` levels, ``k`` the least
    with ``max_fanout ** (k + 1) >= d``, level ``j`` holding ``ceil(d / max_fanout ** (k + 1 -
    j))`` bufs, so no node drives more than ``max_fanout`` edges and every former consumer sits
    behind exactly ``k`` bufs (equal delays; a later :func:`hw.pipeline.insert_pipeline` cuts
    the tree uniformly). Consumers keep their edge width and port; a buf is as wide as the
    widest edge below it and copies ``u``'s ``signed``, so it hands on the same bits.
    ``ValueError`` if ``max_fanout`` is not an int >= 2."""
    if isinstance(max_fanout, bool) or not isinstance(max_fanout, int) or max_fanout < 2:
        raise ValueError(f"max_fanout must be an int >= 2, got {max_fanout!r}")
    trees: dict[str, tuple[list[Node], list[Edge], dict[tuple[str, int], str]]] = {}
    for node in graph:
        out = graph.out_edges(node.name)
        if len(out) > max_fanout:
            trees[node.name] = _fanout_tree(graph, node, out, max_fanout)
    nodes: list[Node] = []
    for node in graph:
        nodes.append(node)
        nodes.extend(trees[node.name][0] if node.name in trees else ())
    edges: list[Edge] = []
    for edge in graph.edges:
        if edge.src not in trees:
            edges.append(edge)
            continue
        _, tree_edges, driver = trees[edge.src]
        if tree_edges:                                  # first edge of this source: the tree
            edges.extend(tree_edges)
            tree_edges.clear()
        edges.append(replace(edge, src=driver[(edge.dst, edge.port)]))
    return _emit(nodes, edges)


def extract_reduction_trees(graph: PrimitiveGraph) -> PrimitiveGraph:
    """Rebuild every maximal tree of ``add`` nodes as a balanced binary adder tree.

    An add is *interior* when its only out-edge is a full-width edge into another add of the
    same width; a *root* is an add that is not interior but has interior operands. A root and
    the interior adds below it compute ``(sum of the leaf operands) mod 2**w``: interior
    results are exact modulo ``2**w`` and read back at full width, so addition's associativity
    and commutativity mod ``2**w`` allow any bracketing. The leaves (in-edges from outside the
    tree, depth first in port order) keep their source, width and hence signedness.

    They are paired Huffman-style by arrival time (:meth:`PrimitiveGraph.longest_path`'s
    ``arrival``): repeatedly the two earliest operands (ties: leaf order, then creation order)
    feed a new add, arriving at ``max + delay``, which minimises the root's arrival over all
    binary trees on those leaves, and is the balanced tree (depth ``ceil(log2 leaves)``) when
    the leaves arrive together. New adds are ``root/sum{k}`` (``k``: creation order; width
    ``w``, the root's ``signed`` and delay); the last pair feeds the root, which keeps its
    name. A tree is rebuilt only if that makes the root arrive strictly earlier, so no node
    arrives later and the critical path never grows. If both operands of a new add come from
    one source, the second passes a ``buf`` ``<add>/in1`` (one edge per source and
    destination)."""
    nodes = graph.nodes

    def interior(name: str) -> bool:
        node, out = nodes[name], graph.out_edges(name)
        return (node.kind == "add" and len(out) == 1 and nodes[out[0].dst].kind == "add"
                and nodes[out[0].dst].width == node.width and out[0].width == node.width)

    inner = {name for name in nodes if interior(name)}
    arrival: dict[str, float] = {}

    def ready(edge: Edge) -> float:         # when an operand from edge.src is available
        return 0.0 if nodes[edge.src].kind == "register" else arrival.get(edge.src, 0.0)

    rebuilt: dict[str, tuple[list[Node], list[Edge]]] = {}
    dropped: set[str] = set()
    for name in graph.topological_order():
        node, edges = nodes[name], graph.in_edges(name)
        arrival[name] = node.delay + max((ready(e) for e in edges), default=0.0)
        if node.kind != "add" or name in inner or not any(e.src in inner for e in edges):
            continue
        leaves, below = _add_tree(graph, name, inner)
        if not leaves:                      # malformed (an add without operands): leave it
            continue
        new_nodes, new_edges, at = _pair_by_arrival(graph, node, leaves,
                                                    [ready(e) for e in leaves])
        if at < arrival[name] - 1e-9:
            rebuilt[name] = (new_nodes, new_edges)
            dropped.update(below)
            arrival[name] = at
    taken = set(nodes) - dropped
    out_nodes: list[Node] = []
    for node in graph:
        if node.name in rebuilt:
            for new in rebuilt[node.name][0]:
                if new.name in taken:
                    raise ValueError(f"generated node name {new.name!r} is already taken")
                taken.add(new.name)
            out_nodes.extend(rebuilt[node.name][0])
        if node.name not in dropped:
            out_nodes.append(node)
    edges = [e for e in graph.edges if e.dst not in rebuilt and e.dst not in dropped]
    for name in rebuilt:
        edges.extend(rebuilt[name][1])
    return _emit(out_nodes, edges)


def propagate_constants(graph: PrimitiveGraph, fixed: Mapping[str, int]) -> PrimitiveGraph:
    """Specialise ``graph`` to inputs held at ``fixed`` values and delete what is then unused.

    The named ``input`` nodes (or in-edge-less ``mem_read`` nodes) become ``const`` nodes (the
    value as a ``width``-bit pattern). Then, to a fixpoint in topological order: an operator
    whose operands are all constant becomes a constant (:func:`hw.graph_sim.evaluate`); a
    register becomes one when its input is a constant equal to its initial value; a ``mux``
    with a constant select becomes a ``buf`` of the selected operand (a constant if that one
    is), which consumers bypass when they read no more bits than it passes and its source has
    its ``signed``. Last, every node from which no ``output``/``mem_write`` is reachable is
    deleted. The result computes the same outputs for every stimulus that holds the fixed
    inputs at their values. ``ValueError``: a malformed graph (:func:`hw.graph_sim.check_graph`),
    a name that is not such an input, or a value that is not an int of its width."""
    check_graph(graph)
    nodes = graph.nodes
    const = {n: node.value & _mask(node.width) for n, node in nodes.items()
             if node.kind == "const"}
    for name, value in fixed.items():
        node = nodes.get(name)
        if node is None or not (node.kind == "input" or (
                node.kind == "mem_read" and not graph.in_edges(name))):
            raise ValueError(f"fixed name {name!r} is not an input of the graph")
        if isinstance(value, bool) or not isinstance(value, int) or not (
                -(1 << (node.width - 1)) <= value < 1 << node.width):
            raise ValueError(f"fixed input {name!r} = {value!r} is not a {node.width}-bit value")
        const[name] = value & _mask(node.width)
    select = _fold(graph, const)

    ins: dict[str, list[Edge]] = {}
    new_nodes: dict[str, Node] = {}
    for name, node in nodes.items():
        if name in const:
            new_nodes[name] = Node(name, "const", node.width, signed=node.signed,
                                   value=const[name])
            ins[name] = []
        elif name in select:
            new_nodes[name] = Node(name, "buf", node.width, signed=node.signed)
            ins[name] = [replace(select[name], port=0)]
        else:
            new_nodes[name] = node
            ins[name] = graph.in_edges(name)
    folded = [n for n in graph.topological_order() if n in select and n not in const]
    _bypass_bufs(new_nodes, ins, folded)
    live = _live(new_nodes, ins)
    edges = [e for name in new_nodes if name in live for e in ins[name]]
    return _emit([n for name, n in new_nodes.items() if name in live], edges)


# ------------------------------------------------------------------------------------ helpers
def _mask(width: int) -> int:
    return (1 << width) - 1


def _emit(nodes: Iterable[Node], edges: Iterable[Edge]) -> PrimitiveGraph:
    """A graph of ``nodes`` then ``edges``, in the given orders, ports kept."""
    out = PrimitiveGraph()
    for node in nodes:
        out.add_node(node.name, node.kind, node.width, node.delay, node.signed, node.value,
                     node.table)
    for edge in edges:
        out.add_edge(edge.src, edge.dst, edge.width, edge.port)
    return out


def _fanout_tree(graph: PrimitiveGraph, node: Node, out: list[Edge], fanout: int
                 ) -> tuple[list[Node], list[Edge], dict[tuple[str, int], str]]:
    """The bufs (level 1 first), the edges from ``node`` down to the last level, and per
    consumer ``(dst, port)`` the buf that drives it."""
    assign: list[list[int]] = []        # per level: each child's parent, built bottom-up
    count = len(out)
    while count > fanout:
        parents = -(-count // fanout)
        assign.append([i * parents // count for i in range(count)])   # contiguous, even
        count = parents
    assign.reverse()                    # assign[j]: level j + 2 (or consumers) -> level j + 1
    depth = len(assign)
    names = [[_fresh(graph, f"{node.name}/fan{j + 1}_{i}") for i in range(max(assign[j]) + 1)]
             for j in range(depth)]
    widths = [[0] * len(level) for level in names]
    below = [e.width for e in out]
    for j in range(depth - 1, -1, -1):
        for child, parent in enumerate(assign[j]):
            widths[j][parent] = max(widths[j][parent], below[child])
        below = widths[j]
    bufs = [Node(name, "buf", widths[j][i], signed=node.signed)
            for j, level in enumerate(names) for i, name in enumerate(level)]
    edges = [Edge(node.name, name, widths[0][i], 0) for i, name in enumerate(names[0])]
    for j in range(1, depth):
        edges.extend(Edge(names[j - 1][parent], names[j][child], widths[j][child], 0)
                     for child, parent in enumerate(assign[j - 1]))
    driver = {(e.dst, e.port): names[-1][parent] for e, parent in zip(out, assign[-1],
                                                                       strict=True)}
    return bufs, edges, driver


def _add_tree(graph: PrimitiveGraph, root: str, inner: set[str]) -> tuple[list[Edge], list[str]]:
    """The add tree under ``root``: its leaf in-edges (depth first, in port order) and its
    interior adds."""
    leaves: list[Edge] = []
    interior: list[str] = []
    stack = list(reversed(graph.in_edges(root)))
    while stack:
        edge = stack.pop()
        if edge.src in inner:
            interior.append(edge.src)
            stack.extend(reversed(graph.in_edges(edge.src)))
        else:
            leaves.append(edge)
    return leaves, interior


def _pair_by_arrival(graph: PrimitiveGraph, root: Node, leaves: list[Edge],
                     ready: list[float]) -> tuple[list[Node], list[Edge], float]:
    """New nodes (producers first, ``root`` not included; names not checked), every edge into
    them and into ``root``, and the root's arrival, summing ``leaves`` (available at
    ``ready``) by the two-earliest rule of :func:`extract_reduction_trees`."""
    new_nodes: list[Node] = []
    edges: list[Edge] = []
    # heap items: (arrival, order, source name, edge width or None for a new add)
    heap = [(at, i, e.src, e.width) for i, (e, at) in enumerate(zip(leaves, ready,
                                                                    strict=True))]
    heapq.heapify(heap)
    count = 0
    while True:
        if len(heap) == 1:
            at, _, src, width = heap[0]
            edges.append(Edge(src, root.name, root.width if width is None else width, 0))
            return new_nodes, edges, root.delay + at
        first, second = heapq.heappop(heap), heapq.heappop(heap)
        dst = root.name if not heap else f"{root.name}/sum{count}"
        top = 0.0
        for port, (at, _, src, width) in enumerate((first, second)):
            width = root.width if width is None else width
            if port == 1 and src == first[2]:           # one edge per (source, destination)
                hop = f"{dst}/in1"
                new_nodes.append(Node(hop, "buf", width, signed=graph.node(src).signed))
                edges.append(Edge(src, hop, width, 0))
                at, src = at + new_nodes[-1].delay, hop
            edges.append(Edge(src, dst, width, port))
            top = max(top, at)
        if not heap:
            return new_nodes, edges, root.delay + top
        new_nodes.append(Node(dst, "add", root.width, root.delay, root.signed))
        heapq.heappush(heap, (root.delay + top, len(leaves) + count, dst, None))
        count += 1


def _fresh(graph: PrimitiveGraph, name: str) -> str:
    """``name``, or ``ValueError`` if ``graph`` already has a node of that name."""
    if name in graph:
        raise ValueError(f"generated node name {name!r} is already taken")
    return name


def _fold(graph: PrimitiveGraph, const: dict[str, int]) -> dict[str, Edge]:
    """Extend ``const`` (node -> pattern) to a fixpoint; return the folded muxes' selected
    in-edges."""
    nodes = graph.nodes
    order = [n for n in graph.topological_order()
             if nodes[n].kind not in ("input", "mem_read", "const", "output", "mem_write")]
    select: dict[str, Edge] = {}

    def operand(edge: Edge) -> int:
        return read_operand(const[edge.src], edge.width, nodes[edge.src].signed)

    changed = True
    while changed:
        changed = False
        for name in order:
            if name in const:
                continue
            node, edges = nodes[name], graph.in_edges(name)
            value = None
            if node.kind == "mux" and edges[0].src in const:
                select[name] = pick = edges[1] if operand(edges[0]) else edges[2]
                if pick.src in const:
                    value = operand(pick) & _mask(node.width)
            elif node.kind == "register":
                if edges[0].src in const:
                    nxt = operand(edges[0]) & _mask(node.width)
                    value = nxt if nxt == node.value & _mask(node.width) else None
            elif all(e.src in const for e in edges):
                value = evaluate(node, [operand(e) for e in edges])
            if value is not None:
                const[name] = value
                changed = True
    return select


def _bypass_bufs(nodes: dict[str, Node], ins: dict[str, list[Edge]], bufs: list[str]) -> None:
    """Rewire consumers of the ``bufs`` (folded muxes, in topological order) straight to the
    buf's source where that reads the same integer: the consumer's edge is no wider than the
    buf's in-edge and the buf, the source's ``signed`` is the buf's, and no edge joins the two
    yet. Edits ``ins`` in place."""
    outs: dict[str, list[Edge]] = {name: [] for name in nodes}
    for edges in ins.values():
        for edge in edges:
            outs[edge.src].append(edge)
    for name in bufs:
        (into,) = ins[name]
        src = nodes[into.src]
        limit = min(into.width, nodes[name].width)
        for edge in list(outs[name]):
            consumer = edge.dst
            if (edge.width > limit or src.signed != nodes[name].signed
                    or any(e.src == src.name for e in ins[consumer])):
                continue
            moved = replace(edge, src=src.name)
            ins[consumer] = [moved if e is edge else e for e in ins[consumer]]
            outs[name].remove(edge)
            outs[src.name].append(moved)


def _live(nodes: dict[str, Node], ins: dict[str, list[Edge]]) -> set[str]:
    """The nodes from which an ``output`` or ``mem_write`` is reachable (sinks included)."""
    live = {n for n, node in nodes.items() if node.kind in ("output", "mem_write")}
    stack = list(live)
    while stack:
        for edge in ins[stack.pop()]:
            if edge.src not in live:
                live.add(edge.src)
                stack.append(edge.src)
    return live
