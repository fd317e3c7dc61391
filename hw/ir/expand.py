"""Lowering of behavioural primitives into the structural ones the back end pipelines.

:func:`expand_reciprocals` replaces every ``recip`` node (``round(2**v / a)``, ties up, 0 for
``a <= 0``) by a restoring long division of the dividend ``D = 2**v + (a >> 1)`` by ``a``,
one stage per quotient bit from the top::

    r = 0;  for i = bits(D) - 1 .. 0:  t = 2 r + D_i;  q_i = [t >= a];  r = t - q_i a

so ``q = floor(D / a)`` exactly. A stage is a shift, an add, a compare, a subtract and a mux
on ``w + 1`` bits (``w``: the divisor's edge width), so the LP pipeliner can cut the division
anywhere, where a ``recip`` node is one indivisible delay and a synthesis tool's generic
divider is built on the dividend's width. The last node keeps the ``recip``'s name, width and
``signed``, so its consumers are untouched; its other nodes are named ``<name>/<part>``.
The pass is function-preserving: for every stimulus the outputs are equal, cycle for cycle.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from .graph_sim import check_graph
from .primitive import Edge, Node, PrimitiveGraph

__all__ = ["expand_reciprocals"]


def expand_reciprocals(graph: PrimitiveGraph) -> PrimitiveGraph:
    """``graph`` with every ``recip`` node lowered to a long division (module docstring);
    ``ValueError`` for a malformed graph or a generated name that is already taken."""
    check_graph(graph)
    out = PrimitiveGraph()
    recips = [n for n in graph if n.kind == "recip"]
    for node in graph:
        if node.kind != "recip":
            out.add_node(node.name, node.kind, node.width, node.delay, node.signed,
                         node.value, node.table)
    for node in recips:
        (edge,) = graph.in_edges(node.name)
        _long_division(out, node, edge)
    for edge in graph.edges:
        if graph.node(edge.dst).kind != "recip":
            out.add_edge(edge.src, edge.dst, edge.width, edge.port)
    return out


def _add(g: PrimitiveGraph, name: str, kind: str, width: int, srcs: tuple[str, ...] = (),
         value: int = 0) -> str:
    """Add node ``name`` reading ``srcs`` (full widths) on ports 0, 1, ..."""
    if name in g:
        raise ValueError(f"generated node name {name!r} is already taken")
    g.add_node(name, kind, width, value=value)
    for src in srcs:
        g.add_edge(src, name)
    return name


def _dividend_digits(g: PrimitiveGraph, p: str, divisor: str, w: int, v: int, bits: int,
                     one: str, zero: str) -> list[str]:
    """Bit ``i`` of ``D = 2**v + (a >> 1)`` per ``i``: constants where ``a >> 1`` has no bits
    (``v >= w - 1``: no carry reaches bit ``v``), else read through edges no wider than the bit
    needs (a pipeline register on an edge is as wide as the edge)."""
    if v < w - 1:                           # the carry can reach the top: add, then slice
        top = _add(g, p + "top", "const", v + 1, value=1 << v)
        half = _add(g, p + "half", "shift", w, (divisor,), value=-1)
        dividend = _add(g, p + "dividend", "add", bits, (top, half))
        return [_add(g, p + f"bit{i}", "shift", 1, (dividend,), value=-i) for i in range(bits)]
    digits = []
    for i in range(bits):
        if i < w - 1:
            name = _add(g, p + f"bit{i}", "shift", 1, value=-(i + 1))
            g.add_edge(divisor, name, i + 2)
            digits.append(name)
        else:
            digits.append(one if i == v else zero)
    return digits


def _long_division(g: PrimitiveGraph, node: Node, edge: Edge) -> None:
    """Nodes computing ``node`` (a ``recip``) from ``edge``'s operand, the last named
    ``node.name``."""
    p, w, v = node.name + "/", edge.width, node.value
    # the divisor as an unsigned w-bit value, and whether the operand (as read) is positive
    divisor = _add(g, p + "a", "buf", w)
    g.add_edge(edge.src, divisor, w)
    zero = _add(g, p + "zero", "const", 1)
    positive = _add(g, p + "pos", "compare", 1)
    g.add_edge(zero, positive)
    g.add_edge(edge.src, positive, w)
    bits = max(v, w - 1) + 1
    one = _add(g, p + "one", "const", 1, value=1)
    digits = _dividend_digits(g, p, divisor, w, v, bits, one, zero)
    rest, quotient = None, []
    for i in range(bits - 1, -1, -1):
        digit = digits[i]
        if rest is None:
            trial = digit
        else:
            twice = _add(g, p + f"twice{i}", "shift", w + 1, (rest,), value=1)
            trial = _add(g, p + f"trial{i}", "add", w + 1, (twice, digit))
        below = _add(g, p + f"below{i}", "compare", 1, (trial, divisor))
        less = _add(g, p + f"less{i}", "sub", w + 1, (trial, divisor))
        if i:
            rest = _add(g, p + f"rest{i}", "mux", w, (below, trial, less))
        if i < node.width:
            q_bit = _add(g, p + f"q{i}", "sub", 1, (one, below))
            quotient.append(_add(g, p + f"qs{i}", "shift", i + 1, (q_bit,), value=i))
    total = _add(g, p + "quotient", "add", node.width, tuple(quotient)) if quotient else zero
    g.add_node(node.name, "mux", node.width, signed=node.signed)
    g.add_edge(positive, node.name)
    g.add_edge(total, node.name)
    g.add_edge(zero, node.name)
