"""Pipeline-register insertion on a :class:`~hw.primitive.PrimitiveGraph` by linear programming.

Model. Every node ``v`` except constants gets an integer stage ``r_v``; inputs sit at stage 0.
The edge ``u -> v`` carries ``r_v - r_u`` new registers, so every path from ``a`` to ``b`` gets
exactly ``r_b - r_a`` of them (the sum telescopes): reconvergent paths stay aligned by
construction and the pipelined circuit computes the same function ``r_out`` cycles later. A
constant is valid in every stage: its edges never carry registers and it has no stage variable
(its reported stage is its earliest consumer's). Existing ``"register"`` nodes are kept; they end
timing paths, and a register feedback loop keeps its stage (every node on it gets the same one).

LP (:func:`insert_pipeline`), with ``w_e`` the edge width and ``D(u, v)`` the largest delay of a
combinational path from ``u`` to ``v`` (see :mod:`hw.primitive`, both ends' delays included)::

    minimise   sum_{u->v} w_e (r_v - r_u)  +  eps * L             eps = 1 / (n + 1)
    s.t.       r_v - r_u >= 0          every edge u -> v whose source is not a constant
               r_v - r_u >= 1          every (u, v) in P (below): a register must cut u ... v
               r_i  = 0                every input          r_v >= 0 for all v
               r_o  = L                every output (``align_outputs``; else L - r_o >= 0)

``P`` holds the pairs with ``D(u, v) > B``; it is pruned to the first violating node along each
path (one search per source, within the budget), because ``r`` grows along edges, so a cut
before ``v`` also cuts every path through ``v``. A path stays within one stage exactly when its
ends have equal stages, so the constraints are exact: every combinational path inside a stage
has delay <= ``B``. With ``share_fanout`` a node ``u`` with several out-edges pays for one
shared register chain instead of one per edge: a variable ``m_u >= r_v`` per successor and the
cost ``max_e w_e * (m_u - r_u)``. ``eps`` only breaks ties in favour of the smaller latency
(bits are integers and ``L <= n - 1`` at the lexicographic optimum).

Every row is a difference constraint (or a bound), so the constraint matrix is totally
unimodular and every vertex is integral: we solve the LP *relaxation* (continuous variables),
then round, and raise ``RuntimeError`` if any value is more than 1e-6 from an integer (the
solver did not return a vertex) or the rounded stages break the budget.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pulp

from .primitive import Node, PrimitiveGraph

__all__ = [
    "PipelineResult", "apply_pipeline", "asap_pipeline", "brute_force_pipeline",
    "insert_pipeline",
]

_TOL = 1e-9              # slack on delay comparisons
_INT_TOL = 1e-6          # how far an LP value may be from an integer


@dataclass(frozen=True)
class PipelineResult:
    """A stage assignment and what it costs.

    ``stages``: node -> stage. ``registers_per_edge``: ``(src, dst)`` -> registers on that edge
    (``stages[dst] - stages[src]``; 0 out of a constant). ``register_bits``: inserted bits,
    ``sum width * count`` over edges, or with ``share_fanout`` ``sum_u max_e w_e * max_e count``
    over sources. ``latency``: the stage of the outputs (all nodes if there is none).
    ``status``: ``"optimal"`` (LP, brute force) or ``"greedy"`` (ASAP). ``method``: ``"highs"``,
    ``"cbc"``, ``"asap"`` or ``"brute_force"``. ``build_s``/``solve_s``: seconds to build the LP
    and in the solver call (the whole run for the baselines)."""

    stages: dict[str, int]
    registers_per_edge: dict[tuple[str, str], int]
    register_bits: int
    latency: int
    solve_s: float
    status: str
    method: str
    share_fanout: bool = False
    build_s: float = 0.0


def insert_pipeline(graph: PrimitiveGraph, stage_budget: float, *, solver: str = "highs",
                    time_limit_s: float | None = None, align_outputs: bool = True,
                    share_fanout: bool = False) -> PipelineResult:
    """Minimum-register-bit pipelining of ``graph`` so that no combinational path inside a stage
    is slower than ``stage_budget``; the LP of the module docstring, via PuLP (``solver`` is
    ``"highs"`` or ``"cbc"``). Among minimal-bit solutions the smallest latency is returned.

    ``ValueError``: bad arguments, or an infeasible budget (a node slower than the budget, or a
    path over the budget inside a register feedback loop). ``RuntimeError``: the solver did not
    prove optimality (``time_limit_s`` ran out; PuLP's ``sol_status`` is checked, not just its
    status) or returned a non-integral point."""
    if solver not in ("highs", "cbc"):
        raise ValueError(f"solver must be 'highs' or 'cbc', got {solver!r}")
    start = time.perf_counter()
    _check_budget(graph, stage_budget)
    pairs = _cut_pairs(graph, stage_budget)
    _check_loops(graph, pairs, stage_budget)
    prob, stage_vars = _build_lp(graph, pairs, align_outputs, share_fanout)
    build_s = time.perf_counter() - start
    with warnings.catch_warnings():     # PuLP 3.3 deprecates the bundled CBC's class name
        warnings.filterwarnings("ignore", "PULP_CBC_CMD is deprecated", DeprecationWarning)
        backend = (pulp.HiGHS(msg=False, timeLimit=time_limit_s) if solver == "highs"
                   else pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s))
    start = time.perf_counter()
    prob.solve(backend)
    solve_s = time.perf_counter() - start
    if prob.status == pulp.LpStatusInfeasible:
        raise ValueError(f"infeasible stage budget: the LP for budget {stage_budget} "
                         "has no solution")
    if prob.sol_status != pulp.LpSolutionOptimal:
        raise RuntimeError(f"{solver} did not prove optimality (status "
                           f"{pulp.LpStatus[prob.status]}, solution "
                           f"{pulp.LpSolution[prob.sol_status]}, time limit {time_limit_s})")
    stages = _integral_stages({n: v.varValue for n, v in stage_vars.items()})
    if not _checker(graph, stage_budget)(stages):
        raise RuntimeError("LP stages violate the stage budget or the edge order (a bug)")
    return _result(graph, stages, share_fanout, "optimal", solver, solve_s, build_s)


def asap_pipeline(graph: PrimitiveGraph, stage_budget: float, *, align_outputs: bool = True,
                  share_fanout: bool = False) -> PipelineResult:
    """As-soon-as-possible baseline: in topological order, a node joins the latest stage of its
    inputs unless the delay accumulated in that stage would exceed the budget, in which case it
    starts the next stage; register counts per edge follow from the stages, which balances
    reconvergent paths. Outputs are then moved to their common latest stage. Repeated to a
    fixpoint when register loops feed stages back. This is the pointwise smallest feasible
    stage assignment, so the LP never needs more register bits. ``ValueError`` as for
    :func:`insert_pipeline`."""
    start = time.perf_counter()
    _check_budget(graph, stage_budget)
    nodes = graph.nodes
    order = [n for n in graph.topological_order() if nodes[n].kind != "const"]
    stages = dict.fromkeys(order, 0)
    while True:
        changed, arrival = False, {}
        for v in order:
            preds = [e.src for e in graph.in_edges(v) if nodes[e.src].kind != "const"]
            stage = max([stages[v]] + [stages[p] for p in preds])
            acc = nodes[v].delay + max((arrival[p] for p in preds if stages[p] == stage
                                        and nodes[p].kind != "register"), default=0.0)
            if acc > stage_budget + _TOL:
                stage, acc = stage + 1, nodes[v].delay
            if stage > len(order):
                raise ValueError("infeasible stage budget: a register feedback loop has a "
                                 f"path slower than the budget {stage_budget}")
            changed |= stage != stages[v]
            stages[v], arrival[v] = stage, acc
        if not changed:
            break
    outputs = [n for n in order if nodes[n].kind == "output"]
    if align_outputs and outputs:
        top = max(stages[o] for o in outputs)
        stages.update(dict.fromkeys(outputs, top))
    return _result(graph, stages, share_fanout, "greedy", "asap", time.perf_counter() - start)


def brute_force_pipeline(graph: PrimitiveGraph, stage_budget: float,
                         max_stage: int | None = None, *, align_outputs: bool = True,
                         share_fanout: bool = False) -> PipelineResult:
    """Exhaustive reference for tiny graphs: try every stage in ``[0, max_stage]`` for every
    non-input, non-constant node (aligned outputs share one), keep the feasible assignment with
    the fewest register bits, then the smallest latency. The budget is checked by recomputing
    arrival times within stages, independently of the LP's pair constraints. ``max_stage``
    defaults to the number of free stage values, enough for an optimum (ranking the distinct
    stages of any feasible solution keeps it feasible and never adds registers). ``ValueError``
    when nothing is feasible. Cost: ``(max_stage + 1) ** free`` assignments."""
    start = time.perf_counter()
    _check_budget(graph, stage_budget)
    nodes = graph.nodes
    order = [n for n in graph.topological_order() if nodes[n].kind not in ("const", "input")]
    outputs = [n for n in order if nodes[n].kind == "output"]
    groups = [[n] for n in order if not (align_outputs and n in outputs)]
    if align_outputs and outputs:
        groups.append(outputs)
    top = len(groups) if max_stage is None else max_stage
    base = {n: 0 for n, node in nodes.items() if node.kind == "input"}
    best: tuple[tuple[int, int], dict[str, int]] | None = None
    feasible = _checker(graph, stage_budget)
    for combo in itertools.product(range(top + 1), repeat=len(groups)):
        stages = dict(base)
        for group, stage in zip(groups, combo, strict=True):
            stages.update(dict.fromkeys(group, stage))
        if not feasible(stages):
            continue
        key = (_bits(graph, stages, share_fanout), _latency(graph, stages))
        if best is None or key < best[0]:
            best = (key, stages)
    if best is None:
        raise ValueError(f"infeasible stage budget: no stage assignment in [0, {top}] meets "
                         f"budget {stage_budget}")
    return _result(graph, best[1], share_fanout, "optimal", "brute_force",
                   time.perf_counter() - start)


def apply_pipeline(graph: PrimitiveGraph, result: PipelineResult) -> PrimitiveGraph:
    """A new graph with ``result``'s registers inserted as ``"register"`` nodes: per edge a chain
    ``src->dst/pipe1 .. pipeK`` of the edge's width, or with ``share_fanout`` one chain
    ``src/pipe1 ..`` per source (width: its widest out-edge) that each consumer taps at its
    count. Its :meth:`~PrimitiveGraph.register_bits` grows by exactly ``result.register_bits``.
    Nodes keep ``signed``, ``value`` and ``table``, edges their width and port (a chain on the
    edge into port ``p`` of ``dst`` ends on port ``p``); inserted registers copy their source's
    ``signed`` and start at 0. ``ValueError`` if a generated name is already taken."""
    out = PrimitiveGraph()
    for node in graph:
        out.add_node(node.name, node.kind, node.width, node.delay, node.signed, node.value,
                     node.table)

    def chain(prefix: str, count: int, width: int, head: str) -> list[str]:
        names = [head] + [f"{prefix}/pipe{i}" for i in range(1, count + 1)]
        signed = graph.node(head).signed
        for prev, name in itertools.pairwise(names):
            out.add_node(name, "register", width, signed=signed)
            out.add_edge(prev, name, width)
        return names

    taps: dict[str, list[str]] = {}
    for edge in graph.edges:
        count = result.registers_per_edge[(edge.src, edge.dst)]
        if result.share_fanout:
            if edge.src not in taps:
                src_out = graph.out_edges(edge.src)
                deepest = max(result.registers_per_edge[(e.src, e.dst)] for e in src_out)
                taps[edge.src] = chain(edge.src, deepest, max(e.width for e in src_out),
                                       edge.src)
            out.add_edge(taps[edge.src][count], edge.dst, edge.width, edge.port)
        else:
            names = chain(f"{edge.src}->{edge.dst}", count, edge.width, edge.src)
            out.add_edge(names[-1], edge.dst, edge.width, edge.port)
    return out


# ------------------------------------------------------------------------------------ helpers
def _check_budget(graph: PrimitiveGraph, budget: float) -> None:
    if not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"stage budget must be a finite number > 0, got {budget!r}")
    for node in graph:
        if node.delay > budget + _TOL:
            raise ValueError(f"infeasible stage budget: node {node.name} has delay "
                             f"{node.delay:g} > budget {budget:g}")


def _cut_pairs(graph: PrimitiveGraph, budget: float) -> list[tuple[str, str, float]]:
    """``(u, v, D(u, v))`` with ``D > budget`` and every node before ``v`` on the searched paths
    within budget: one search from each non-register, non-constant source with positive delay
    (a zero-delay source's pairs are implied by its successors'), in topological order, never
    through a register and never past a violating node."""
    nodes = graph.nodes
    order = graph.topological_order()
    pos = {n: i for i, n in enumerate(order)}
    pairs: list[tuple[str, str, float]] = []
    for u in order:
        if nodes[u].kind not in ("register", "const") and nodes[u].delay > 0:
            pairs.extend(_cuts_from(graph, nodes, u, budget, pos))
    return pairs


def _cuts_from(graph: PrimitiveGraph, nodes: dict[str, Node], u: str, budget: float,
               pos: dict[str, int]) -> list[tuple[str, str, float]]:
    within = {u: nodes[u].delay}            # D(u, w) for the nodes searched past
    heap: list[tuple[int, str]] = []        # (topological position, node): preds come first
    queued: set[str] = set()
    pairs = []

    def reach(x: str) -> None:
        for e in graph.out_edges(x):
            if e.dst not in queued and nodes[e.dst].kind != "register":
                queued.add(e.dst)
                heapq.heappush(heap, (pos[e.dst], e.dst))

    reach(u)
    while heap:
        _, w = heapq.heappop(heap)
        delay = nodes[w].delay + max(within[e.src] for e in graph.in_edges(w) if e.src in within)
        if delay > budget + _TOL:
            pairs.append((u, w, delay))
        else:
            within[w] = delay
            reach(w)
    return pairs


def _check_loops(graph: PrimitiveGraph, pairs: list[tuple[str, str, float]],
                 budget: float) -> None:
    """A pair inside one strongly connected component would need a register inside a
    feedback loop, which would change what the loop computes."""
    comp = graph.strong_components()
    for u, v, delay in pairs:
        if comp[u] == comp[v]:
            raise ValueError(f"infeasible stage budget: path {u} -> {v} has delay {delay:g} > "
                             f"budget {budget:g} inside a register feedback loop")


def _build_lp(graph: PrimitiveGraph, pairs: list[tuple[str, str, float]], align: bool,
              share: bool) -> tuple[pulp.LpProblem, dict[str, pulp.LpVariable]]:
    """The LP of the module docstring, continuous variables only."""
    nodes = graph.nodes
    staged = [n for n, node in nodes.items() if node.kind != "const"]
    prob = pulp.LpProblem("pipeline", pulp.LpMinimize)
    r = {n: prob.add_variable(f"r{i}", 0, 0 if nodes[n].kind == "input" else None)
         for i, n in enumerate(staged)}
    latency = prob.add_variable("L", 0)
    cost: dict[pulp.LpVariable, float] = defaultdict(float)

    def at_least(hi: pulp.LpVariable, lo: pulp.LpVariable, rhs: int, sense=pulp.LpConstraintGE):
        expr = pulp.LpAffineExpression([(hi, 1), (lo, -1)])
        prob.addConstraint(pulp.LpConstraint(expr, sense, rhs=rhs))

    for i, u in enumerate(staged):
        out = graph.out_edges(u)
        for e in out:
            if e.dst != u:                  # a register holding itself: no constraint
                at_least(r[e.dst], r[u], 0)
        if share and len(out) > 1:
            shared = prob.add_variable(f"m{i}", 0)
            for e in out:
                at_least(shared, r[e.dst], 0)
            width = max(e.width for e in out)
            cost[shared] += width
            cost[r[u]] -= width
        else:
            for e in out:
                cost[r[e.dst]] += e.width
                cost[r[u]] -= e.width
    for u, v, _ in pairs:
        at_least(r[v], r[u], 1)
    outputs = [n for n in staged if nodes[n].kind == "output"]
    for n in outputs or staged:
        at_least(latency, r[n], 0, pulp.LpConstraintEQ if align and outputs else
                 pulp.LpConstraintGE)
    cost[latency] += 1.0 / (len(staged) + 1)
    prob.setObjective(pulp.LpAffineExpression(list(cost.items())))
    return prob, r


def _integral_stages(values: dict[str, float | None]) -> dict[str, int]:
    """Round LP values to stages; ``RuntimeError`` if one is further than 1e-6 from an integer
    (``None``: a variable in no row, free, taken as 0)."""
    stages = {}
    for name, value in values.items():
        value = 0.0 if value is None else value
        if abs(value - round(value)) > _INT_TOL:
            raise RuntimeError(f"LP solution is not integral: stage of {name} = {value!r} "
                               "(the solver did not return a vertex)")
        stages[name] = int(round(value))
    return stages


def _checker(graph: PrimitiveGraph, budget: float) -> Callable[[dict[str, int]], bool]:
    """``check(stages)``: stages never decrease along an edge (constants aside) and every
    combinational path inside one stage has delay <= budget (arrival times recomputed in
    topological order, registers reset them)."""
    nodes = graph.nodes
    plan = [(v, nodes[v].delay, [(e.src, nodes[e.src].kind == "register")
                                 for e in graph.in_edges(v) if nodes[e.src].kind != "const"])
            for v in graph.topological_order() if nodes[v].kind != "const"]
    limit = budget + _TOL

    def check(stages: dict[str, int]) -> bool:
        arrival: dict[str, float] = {}
        for v, delay, preds in plan:
            stage, acc = stages[v], 0.0
            for src, is_reg in preds:
                if stages[src] > stage:
                    return False
                if not is_reg and stages[src] == stage and arrival[src] > acc:
                    acc = arrival[src]
            arrival[v] = acc + delay
            if arrival[v] > limit:
                return False
        return True

    return check


def _bits(graph: PrimitiveGraph, stages: dict[str, int], share: bool) -> int:
    total = 0
    for u, node in graph.nodes.items():
        out = graph.out_edges(u)
        if node.kind == "const" or not out:
            continue
        if share:
            total += max(e.width for e in out) * max(stages[e.dst] - stages[u] for e in out)
        else:
            total += sum(e.width * (stages[e.dst] - stages[u]) for e in out)
    return total


def _latency(graph: PrimitiveGraph, stages: dict[str, int]) -> int:
    outputs = [n for n, node in graph.nodes.items() if node.kind == "output"]
    return max((stages[n] for n in outputs or stages), default=0)


def _result(graph: PrimitiveGraph, stages: dict[str, int], share: bool, status: str,
            method: str, solve_s: float, build_s: float = 0.0) -> PipelineResult:
    """Fill in constants' stages (earliest consumer) and the derived counts."""
    nodes = graph.nodes
    full = {}
    for n, node in nodes.items():
        if node.kind == "const":
            full[n] = min((stages[e.dst] for e in graph.out_edges(n)), default=0)
        else:
            full[n] = stages[n]
    per_edge = {(e.src, e.dst): 0 if nodes[e.src].kind == "const" else full[e.dst] - full[e.src]
                for e in graph.edges}
    return PipelineResult(full, per_edge, _bits(graph, stages, share), _latency(graph, stages),
                          solve_s, status, method, share, build_s)
