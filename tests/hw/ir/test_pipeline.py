"""LP pipelining against brute force, hand-checked examples, the ASAP baseline and invariants."""

import importlib.util
from pathlib import Path

import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw.ir import pipeline as pl
from hw.ir.graph_sim import simulate_graph
from hw.ir.pipeline import (
    apply_pipeline,
    asap_pipeline,
    brute_force_pipeline,
    insert_pipeline,
)
from hw.ir.primitive import PrimitiveGraph

COMB = ["mul", "add", "sub", "shift", "compare", "relu", "mux", "mem_read"]
POOLS = {   # "dag": few registers, many cuts; "loops": registers with back edges
    "dag": COMB + COMB + ["register", "const", "output", "output", "input", "mem_write"],
    "loops": COMB + ["register", "register", "register", "const", "output"],
}
DELAYS = [0.25, 0.5, 0.75, 0.0, 1.0, 0.5, 0.25, 1.25]
BUDGETS = [1.0, 0.5, 0.75, 1.25, 1.5, 2.0, 0.25]


@st.composite
def tiny_graphs(draw, max_nodes=6):
    """Up to ``max_nodes`` nodes (the first an input), random kinds, widths, delays; forward
    edges at random, plus back edges (so loops) out of registers."""
    n = draw(st.sampled_from([max_nodes, max_nodes - 1, max_nodes, 3, max_nodes - 2, 2]))
    pool = POOLS[draw(st.sampled_from(sorted(POOLS)))]
    kinds = ["input"] + [draw(st.sampled_from(pool)) for _ in range(n - 1)]
    g = PrimitiveGraph()
    for i, kind in enumerate(kinds):
        delay = draw(st.sampled_from(DELAYS)) if kind in COMB else None
        g.add_node(f"n{i}", kind, draw(st.integers(1, 16)), delay)
    for i in range(n):
        for j in range(n):
            if kinds[j] in ("input", "const") or kinds[i] in ("output", "mem_write"):
                continue
            if (j > i and draw(st.integers(0, 2)) > 0) or (
                    j <= i and kinds[i] == "register" and draw(st.booleans())):
                g.add_edge(f"n{i}", f"n{j}", draw(st.integers(1, g.node(f"n{i}").width)))
    return g, draw(st.sampled_from(BUDGETS))


def _path_register_counts(graph, result):
    """Per node, the set of inserted-register counts over all paths from the inputs, walked on
    the materialised graph (pipeline registers are the nodes named '.../pipeN')."""
    g = apply_pipeline(graph, result)
    counts = {n.name: {0} for n in g if n.kind == "input"}
    for _ in range(len(g) + 1):                     # a fixpoint: loops add nothing
        changed = False
        for name in g.topological_order():
            here = set(counts.get(name, set()))
            for e in g.in_edges(name):
                step = int("/pipe" in e.src)
                here |= {c + step for c in counts.get(e.src, ())}
            assert len(here) <= 1, f"{name}: paths with {sorted(here)} pipeline registers"
            if here and here != counts.get(name):
                counts[name], changed = here, True
        if not changed:
            return counts
    raise AssertionError("register counts did not settle")


def _check_solution(graph, budget, result, align=True):
    """Budget within stages, balance, bit count, aligned outputs and integer stages."""
    assert all(isinstance(s, int) for s in result.stages.values())
    assert all(result.stages[n.name] == 0 for n in graph if n.kind == "input")
    for e in graph.edges:
        count = result.registers_per_edge[(e.src, e.dst)]
        if graph.node(e.src).kind == "const":
            assert count == 0
        else:
            assert count == result.stages[e.dst] - result.stages[e.src] >= 0
    piped = apply_pipeline(graph, result)
    assert piped.longest_path()[0] <= budget + 1e-9       # recomputed between register cuts
    assert piped.register_bits() - graph.register_bits() == result.register_bits
    counts = _path_register_counts(graph, result)
    outputs = [n.name for n in graph if n.kind == "output" and n.name in counts]
    if align:
        assert len({min(counts[o]) for o in outputs}) <= 1


# ---------------------------------------------------------------- random tiny graphs
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_graphs(), st.booleans(), st.booleans())
def test_lp_matches_brute_force(case, align, share):
    graph, budget = case
    try:
        best = brute_force_pipeline(graph, budget, align_outputs=align, share_fanout=share)
    except ValueError as exc:
        assert str(exc).startswith("infeasible stage budget")
        for run in (insert_pipeline, asap_pipeline):
            with pytest.raises(ValueError, match="^infeasible stage budget"):
                run(graph, budget, align_outputs=align, share_fanout=share)
        return
    lp = insert_pipeline(graph, budget, align_outputs=align, share_fanout=share)
    assert (lp.register_bits, lp.latency) == (best.register_bits, best.latency)
    assert lp.status == "optimal" and lp.method == "highs"
    _check_solution(graph, budget, lp, align)
    _check_solution(graph, budget, best, align)
    asap = asap_pipeline(graph, budget, align_outputs=align, share_fanout=share)
    _check_solution(graph, budget, asap, align)
    assert lp.register_bits <= asap.register_bits
    # ASAP is the pointwise earliest feasible assignment
    assert all(asap.stages[n.name] <= lp.stages[n.name] for n in graph if n.kind != "const")


@settings(max_examples=25, deadline=None)
@given(tiny_graphs())
def test_cbc_and_highs_agree(case):
    graph, budget = case
    try:
        highs = insert_pipeline(graph, budget)
    except ValueError:
        with pytest.raises(ValueError, match="^infeasible stage budget"):
            insert_pipeline(graph, budget, solver="cbc")
        return
    cbc = insert_pipeline(graph, budget, solver="cbc")
    assert (cbc.register_bits, cbc.latency) == (highs.register_bits, highs.latency)
    assert cbc.method == "cbc"


# ---------------------------------------------------------------- hand-checked examples
def mac_tree():
    """8 products a_k * b_k (8x8 -> 16 bits) summed by a balanced adder tree (17, 18, 19 bits)."""
    g = PrimitiveGraph()
    for k in range(8):
        g.add_node(f"a{k}", "input", 8)
        g.add_node(f"b{k}", "input", 8)
        g.add_node(f"m{k}", "mul", 16)
        g.add_edge(f"a{k}", f"m{k}")
        g.add_edge(f"b{k}", f"m{k}")
    level, width = [f"m{k}" for k in range(8)], 17
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            name = f"s{width}_{j // 2}"
            g.add_node(name, "add", width)
            g.add_edge(level[j], name)
            g.add_edge(level[j + 1], name)
            nxt.append(name)
        level, width = nxt, width + 1
    g.add_node("y", "output", 19)
    g.add_edge(level[0], "y")
    return g


def fir_chain():
    """y = ((x0 c0 + x1 c1) + x2 c2) + x3 c3 with constant coefficients: an adder chain."""
    g = PrimitiveGraph()
    for k in range(4):
        g.add_node(f"x{k}", "input", 8)
        g.add_node(f"c{k}", "const", 8)
        g.add_node(f"p{k}", "mul", 16)
        g.add_edge(f"x{k}", f"p{k}")
        g.add_edge(f"c{k}", f"p{k}")
    prev = "p0"
    for k in range(1, 4):
        g.add_node(f"s{k}", "add", 16 + min(k, 2))
        g.add_edge(prev, f"s{k}")
        g.add_edge(f"p{k}", f"s{k}")
        prev = f"s{k}"
    g.add_node("y", "output", 18)
    g.add_edge(prev, "y")
    return g


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_mac_tree_hand_checked(solver):
    """Budget 1.0 = one multiplier or two adders. Each product must be cut from its first adder
    (1.0 + 0.5 > 1): 8 x 16 bits, the cheapest place (registering both 8-bit operands costs the
    same and adds latency). Adder levels 1-3 chain 1.5 > 1, so one cut between level 1 and 3:
    after level 2 (2 x 18 bits) beats after level 1 (4 x 17). Optimum 128 + 36 = 164, latency 2;
    ASAP finds the same here."""
    g = mac_tree()
    lp = insert_pipeline(g, 1.0, solver=solver)
    assert (lp.register_bits, lp.latency) == (164, 2)
    assert {lp.stages[n] for n in ("m0", "m7")} == {0}
    assert {lp.stages[n] for n in ("s17_0", "s17_3", "s18_1")} == {1}
    assert lp.stages["s19_0"] == lp.stages["y"] == 2
    assert (asap_pipeline(g, 1.0).register_bits, asap_pipeline(g, 1.0).latency) == (164, 2)
    _check_solution(g, 1.0, lp)
    # budget 1.5: mul + 2 adders (2.0) is too slow, so cut products -> level 1 (8 x 16) or
    # level 1 -> level 2 (4 x 17 = 68, the optimum); at 2.5 mul + 3 adders fit in one stage
    for budget, bits in ((1.5, 68), (2.5, 0)):
        assert insert_pipeline(g, budget).register_bits == bits
        assert asap_pipeline(g, budget).register_bits == bits


def test_fir_chain_beats_asap():
    """ASAP computes every product in stage 0, so x3 * c3 is carried 2 stages as 16 bits (32).
    The LP registers the 8-bit x3 once and the product once (8 + 16) instead: cuts p0, p1, p2
    -> s (48), s2 -> s3 (18), x3 -> p3 (8), p3 -> s3 (16) = 90; ASAP 98. Constants are free."""
    g = fir_chain()
    lp, asap = insert_pipeline(g, 1.0), asap_pipeline(g, 1.0)
    assert (lp.register_bits, lp.latency) == (90, 2)
    assert (asap.register_bits, asap.latency) == (98, 2)
    assert lp.stages["p3"] == 1 and lp.registers_per_edge[("c3", "p3")] == 0
    assert brute_force_pipeline(g, 1.0, max_stage=2).register_bits == 90
    _check_solution(g, 1.0, lp)
    _check_solution(g, 1.0, asap)


def test_fanout_sharing():
    """x feeds a1 -> ... -> a5 (adders, 8 bits) and also a3 and a5. Budget 1.0 forces
    r3 >= r1 + 1 and r5 >= r3 + 1, so a1, a3, a5 sit at stages 0, 1, 2. Per edge: the chain
    carries 2 x 8, x -> a3 8, x -> a5 16: 40 bits. Shared: x's taps reuse one 2-deep chain:
    16 + 16 = 32 bits."""
    g = PrimitiveGraph()
    g.add_node("x", "input", 8)
    for k in range(1, 6):
        g.add_node(f"a{k}", "add", 8)
        g.add_edge(f"a{k - 1}" if k > 1 else "x", f"a{k}")
    g.add_node("y", "output", 8)
    for a, b in [("x", "a3"), ("x", "a5"), ("a5", "y")]:
        g.add_edge(a, b)
    per_edge = insert_pipeline(g, 1.0)
    shared = insert_pipeline(g, 1.0, share_fanout=True)
    assert (per_edge.register_bits, shared.register_bits) == (40, 32)
    assert [shared.stages[f"a{k}"] for k in (1, 3, 5)] == [0, 1, 2]
    piped = apply_pipeline(g, shared)
    assert [e.src for e in piped.in_edges("a5")] == ["a4", "x/pipe2"]
    assert "x/pipe1" in [e.src for e in piped.in_edges("a3")]
    best = brute_force_pipeline(g, 1.0, max_stage=2, share_fanout=True)
    assert best.register_bits == 32
    for result in (per_edge, shared, best):
        _check_solution(g, 1.0, result)


def test_register_loop_keeps_its_stage():
    """Accumulator: x * w -> add -> acc -> add. The product is cut from the adder; the loop
    (add -> acc -> add) takes no register, so add and acc share a stage."""
    g = PrimitiveGraph()
    for name, kind, width in [("x", "input", 8), ("w", "input", 8), ("m", "mul", 16),
                              ("add", "add", 32), ("acc", "register", 32), ("y", "output", 32)]:
        g.add_node(name, kind, width)
    for a, b in [("x", "m"), ("w", "m"), ("m", "add"), ("add", "acc"), ("acc", "add"),
                 ("acc", "y")]:
        g.add_edge(a, b)
    lp = insert_pipeline(g, 1.0)
    assert lp.stages["add"] == lp.stages["acc"] == 1 and lp.register_bits == 16
    assert asap_pipeline(g, 1.0).stages == lp.stages
    _check_solution(g, 1.0, lp)
    g.add_node("norm", "shift", 32, 0.75)                  # loop too slow for the budget
    g.add_edge("acc", "norm")
    g2 = PrimitiveGraph()
    for n in g:
        g2.add_node(n.name, n.kind, n.width, n.delay)
    for a, b in [("x", "m"), ("w", "m"), ("m", "add"), ("add", "norm"), ("norm", "acc"),
                 ("acc", "add"), ("acc", "y")]:
        g2.add_edge(a, b)
    for run in (insert_pipeline, asap_pipeline, brute_force_pipeline):
        with pytest.raises(ValueError, match="^infeasible stage budget"):
            run(g2, 1.0)
    with pytest.raises(ValueError, match="feedback loop"):
        insert_pipeline(g2, 1.0)


# ---------------------------------------------------------------- errors and the contract
def test_infeasible_node_delay():
    g = mac_tree()
    msg = "infeasible stage budget: node m0 has delay 1 > budget 0.75"
    for run in (insert_pipeline, asap_pipeline, brute_force_pipeline):
        with pytest.raises(ValueError, match=f"^{msg}$"):
            run(g, 0.75)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stage budget must be"):
            insert_pipeline(g, bad)
    with pytest.raises(ValueError, match="solver"):
        insert_pipeline(g, 1.0, solver="gurobi")


def test_lp_is_a_relaxation_and_integrality_is_checked(monkeypatch):
    g = fir_chain()
    pairs = pl._cut_pairs(g, 1.0)
    prob, _ = pl._build_lp(g, pairs, True, False)
    assert not prob.isMIP()
    assert all(v.cat == pulp.LpContinuous for v in prob.variables())
    assert pl._integral_stages({"a": 2.0000004, "b": None}) == {"a": 2, "b": 0}
    with pytest.raises(RuntimeError, match="not integral"):
        pl._integral_stages({"a": 1.5})

    solve = pulp.LpProblem.solve

    def fractional(self, *args, **kwargs):
        status = solve(self, *args, **kwargs)
        stage = next(v for v in self.variables() if v.name.startswith("r"))
        stage.varValue += 0.5
        return status

    monkeypatch.setattr(pulp.LpProblem, "solve", fractional)
    with pytest.raises(RuntimeError, match="not integral"):
        insert_pipeline(g, 1.0)


def test_time_limit_without_proof_is_an_error(monkeypatch):
    """PuLP reports status Optimal after a time limit; the solution status tells."""
    solve = pulp.LpProblem.solve

    def timed_out(self, *args, **kwargs):
        status = solve(self, *args, **kwargs)
        self.sol_status = pulp.LpSolutionIntegerFeasible
        return status

    monkeypatch.setattr(pulp.LpProblem, "solve", timed_out)
    with pytest.raises(RuntimeError, match="did not prove optimality"):
        insert_pipeline(fir_chain(), 1.0, time_limit_s=5)


def test_pair_constraints_are_pruned():
    """From the first multiplier only its adder is a cut pair; what lies beyond is implied."""
    pairs = pl._cut_pairs(fir_chain(), 1.0)
    assert [(u, v) for u, v, _ in pairs if u == "p0"] == [("p0", "s1")]
    assert ("s1", "s3", 1.5) in pairs


def _benchmark_module():
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "pipeline_lp.py"
    spec = importlib.util.spec_from_file_location("pipeline_lp_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("p", [4, 6])
def test_systolic_benchmark_graph_closed_form(p):
    """The benchmark's P x P array, budget 1.0. Adder (i, j) can start no earlier than stage
    1 + j // 2 (a multiplier, then two adders per stage). ASAP computes every product in
    stage 0 and carries it (16 bits) to its adder; the LP instead delays the 8-bit operand
    registers, whose forwarding chains share the delay. Per row, with S = sum_j (1 + j // 2):
    ASAP 17 S + 32 (P/2 - 1) (products, control, adder chain); LP 16 P + 8 (P/2 - 1) + S
    + 32 (P/2 - 1), plus 8 sum_j j // 2 once for the B columns."""
    graph = _benchmark_module().systolic_mac_graph(p)
    s = sum(1 + j // 2 for j in range(p))
    asap, lp = asap_pipeline(graph, 1.0), insert_pipeline(graph, 1.0)
    assert asap.register_bits == p * (17 * s + 32 * (p // 2 - 1))
    assert lp.register_bits == (p * (16 * p + 8 * (p // 2 - 1) + s + 32 * (p // 2 - 1))
                                + 8 * sum(j // 2 for j in range(p)))
    assert lp.latency == asap.latency == 1 + (p - 1) // 2
    _check_solution(graph, 1.0, lp)


class TestApplyPipelineKeepsSemantics:
    """Nodes keep ``signed``/``value``, edges their port; inserted registers copy their source's
    ``signed`` and start at 0; the pipelined graph computes the same outputs ``latency``
    cycles later (a register-free graph, every input at stage 0)."""

    def graph(self):
        g = PrimitiveGraph()
        g.add_node("s", "input", 1)
        g.add_node("a", "input", 8, signed=True)
        g.add_node("b", "input", 8)
        g.add_node("k", "const", 8, signed=True, value=-7)
        g.add_node("m", "mul", 16, signed=True)
        g.add_node("d", "sub", 9, signed=True)
        g.add_node("x", "mux", 16, signed=True)
        g.add_node("y", "output", 16)
        g.add_edge("a", "m")
        g.add_edge("k", "m")
        g.add_edge("b", "d", port=1)                 # added out of port order
        g.add_edge("a", "d", port=0)
        g.add_edge("d", "x", port=2)
        g.add_edge("m", "x", port=1)
        g.add_edge("s", "x", port=0)
        g.add_edge("x", "y")
        return g

    @pytest.mark.parametrize("share", [False, True])
    def test_fields_ports_and_function(self, share):
        """Budget 1.0: the product (1.0) and the mux (0.25) need a cut between them."""
        g = self.graph()
        result = insert_pipeline(g, 1.0, share_fanout=share)
        piped = apply_pipeline(g, result)
        assert result.latency == 1 and result.register_bits > 0
        for node in g:
            assert piped.node(node.name) == node
        regs = [n for n in piped if "/pipe" in n.name]
        assert regs and all(n.kind == "register" and n.value == 0 for n in regs)
        for reg in regs:
            (edge,) = piped.in_edges(reg.name)
            assert reg.signed == piped.node(edge.src).signed
        assert [e.port for e in piped.in_edges("x")] == [0, 1, 2]
        assert {e.port: _driver(piped, e.src) for e in piped.in_edges("x")} == {
            0: "s", 1: "m", 2: "d"}
        assert [_driver(piped, e.src) for e in piped.in_edges("d")] == ["a", "b"]
        stim = [{"s": t % 2, "a": (37 * t) % 256 - 128, "b": (91 * t) % 256} for t in range(24)]
        want, got = simulate_graph(g, stim), simulate_graph(piped, stim)
        assert got[1:] == want[:-1]


def _driver(graph, name):
    """``name`` or, through pipeline registers, the node that drives them."""
    while "/pipe" in name:
        (edge,) = graph.in_edges(name)
        name = edge.src
    return name
