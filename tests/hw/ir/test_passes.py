"""Back-end passes: function preserved cycle for cycle (simulated), structure, determinism."""

import random

import pytest

from hw.front.plan import plan_array
from hw.front.spec import load_spec
from hw.ir.graph_sim import check_graph, simulate_graph
from hw.ir.lower import lower_array
from hw.ir.passes import extract_reduction_trees, propagate_constants, split_fanout
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from hw.ir.primitive import ARITY, PrimitiveGraph

OPS = ["add", "add", "mul", "sub", "mux", "mux", "shift", "compare", "relu", "buf"]


# ------------------------------------------------------------------------------------ helpers
def random_graph(seed, n_ops=40, registers="loops", memories=True, chains=False):
    """A well-formed random graph: 2-5 inputs (random widths and signedness), constants, ``n_ops``
    operators reading random slices of recent nodes, registers (``"loops"``: created first and
    fed from a later operator, so on feedback loops; ``"forward"``: operators of the chain;
    ``"none"``), several outputs and, with ``memories``, a mem_read source and a mem_write.
    With ``chains``, adds are 8 or 12 bits and most extend the last add of their width at full
    width (adder chains, some cut by a second reader)."""
    rng = random.Random(seed)
    g = PrimitiveGraph()
    pool, inputs = [], []

    def node(name, kind, width, **kw):
        g.add_node(name, kind, width, signed=rng.random() < 0.5, **kw)
        return name

    for i in range(rng.randint(2, 5)):
        inputs.append(node(f"x{i}", "input", rng.randint(1, 10)))
    if memories:
        inputs.append(node("rd", "mem_read", rng.randint(2, 8)))
    pool.extend(inputs)
    for i in range(2):
        w = rng.randint(1, 8)
        pool.append(node(f"c{i}", "const", w, value=rng.randrange(-(1 << (w - 1)), 1 << w)))
    loops = []
    if registers == "loops":
        for i in range(rng.randint(1, 3)):
            w = rng.randint(1, 12)
            loops.append(node(f"r{i}", "register", w, value=rng.randrange(1 << w)))
        pool.extend(loops)
    kinds = OPS + (["register"] if registers == "forward" else []) + (["add"] * 4 if chains
                                                                       else [])
    last_add = {}
    for i in range(n_ops):
        kind = rng.choice(kinds)
        value = rng.randint(-4, 4) if kind == "shift" else 0
        width = rng.choice([8, 12]) if chains and kind == "add" else rng.randint(1, 16)
        name = node(f"n{i}", kind, width, value=value)
        arity = rng.randint(1, 3) if kind == "add" else ARITY[kind][0]
        window = pool if rng.random() < 0.3 else pool[-10:]
        sources = rng.sample(window, arity)
        if kind == "mux" and rng.random() < 0.6:        # selects driven straight by inputs
            sources[0] = rng.choice([x for x in inputs if x not in sources[1:]])
        if chains and kind == "add" and width in last_add and rng.random() < 0.8:
            sources = [last_add[width]] + [x for x in sources if x != last_add[width]][:2]
        for k, src in enumerate(sources):
            full = chains and kind == "add" and k == 0 and src == last_add.get(width)
            g.add_edge(src, name, width if full else rng.randint(1, g.node(src).width))
        if kind == "add":
            last_add[width] = name
        pool.append(name)
    ops = [f"n{i}" for i in range(n_ops)]
    for reg in loops:
        src = rng.choice(ops[n_ops // 2:])
        g.add_edge(src, reg, rng.randint(1, g.node(src).width))
    for k, src in enumerate(rng.sample(ops, 4) + ops[-1:]):
        g.add_node(f"y{k}", "output", rng.randint(1, 16))
        g.add_edge(src, f"y{k}", rng.randint(1, g.node(src).width))
    if memories:
        g.add_node("wr", "mem_write", 8)
        g.add_edge(rng.choice(ops), "wr", 1)
    check_graph(g)
    return g


def stimulus(graph, cycles, seed, fixed=None):
    """Random values (both encodings) for every input and edge-less mem_read; ``fixed`` wins."""
    rng = random.Random(seed)
    names = [(n.name, n.width) for n in graph
             if n.kind == "input" or (n.kind == "mem_read" and not graph.in_edges(n.name))]
    return [{name: rng.randrange(-(1 << (w - 1)), 1 << w) for name, w in names} | (fixed or {})
            for _ in range(cycles)]


def assert_same_function(before, after, cycles=40, seed=0, fixed=None):
    stim = stimulus(before, cycles, seed, fixed)
    want = simulate_graph(before, stim)
    assert simulate_graph(after, stim) == want
    return want


def snapshot(graph):
    return graph.nodes, graph.edges


def fanout(graph):
    return max((len(graph.out_edges(n.name)) for n in graph), default=0)


def trace(original, split, edge):
    """The driver that ``edge`` of ``original`` has in ``split`` past the new bufs, and how many
    bufs lie in between (the edge into the consumer keeps its width)."""
    (now,) = [e for e in split.in_edges(edge.dst) if e.port == edge.port]
    assert now.width == edge.width
    depth = 0
    while now.src not in original:
        depth += 1
        (now,) = split.in_edges(now.src)
    return now.src, depth


def chain_of_adds(n, width=12):
    """y = ((x + v0) + v1) + ... + v(n-1): ``n`` adds; leaves of mixed width and signedness,
    some read through narrower edges."""
    g = PrimitiveGraph()
    g.add_node("x", "input", 8, signed=True)
    prev = "x"
    for k in range(n):
        g.add_node(f"v{k}", "input", 3 + k % 7, signed=k % 2 == 0)
        g.add_node(f"a{k}", "add", width)
        g.add_edge(prev, f"a{k}")
        g.add_edge(f"v{k}", f"a{k}", max(1, g.node(f"v{k}").width - k % 3))
        prev = f"a{k}"
    g.add_node("y", "output", width)
    g.add_edge(prev, "y")
    return g


def lowered(name):
    return lower_array([plan_array(load_spec(f"examples/{name}.yaml"))]).graph


# ------------------------------------------------------------------------------------ passes
class TestSplitFanout:
    def star(self, consumers, width=8):
        g = PrimitiveGraph()
        g.add_node("x", "input", width, signed=True)
        for k in range(consumers):
            g.add_node(f"y{k}", "output", 16)
            g.add_edge("x", f"y{k}", 1 + k % width)
        return g

    def test_tree_shape(self):
        """10 consumers, fan-out 3: 2 levels (3**3 >= 10 > 3**2) of 2 and ceil(10/3) = 4 bufs."""
        g = self.star(10)
        out = split_fanout(g, 3)
        bufs = sorted(n.name for n in out if n.kind == "buf")
        assert bufs == ["x/fan1_0", "x/fan1_1"] + [f"x/fan2_{i}" for i in range(4)]
        assert fanout(out) == 3
        assert {trace(g, out, e) for e in g.edges} == {("x", 2)}
        assert [e.width for e in out.in_edges("y9")] == [2]          # consumer slices kept
        assert all(out.node(b).signed for b in bufs)                 # the source's signedness
        assert_same_function(g, out)

    def test_buf_width_is_the_widest_edge_below(self):
        g = self.star(4, width=8)                                    # edges 1, 2, 3, 4 bits
        out = split_fanout(g, 2)
        assert [out.node(f"x/fan1_{i}").width for i in range(2)] == [2, 4]
        assert_same_function(g, out)

    def test_small_fanout_untouched(self):
        g = self.star(3)
        out = split_fanout(g, 3)
        assert snapshot(out) == snapshot(g)

    @pytest.mark.parametrize("seed", range(12))
    @pytest.mark.parametrize("limit", [2, 3])
    def test_random_graphs(self, seed, limit):
        g = random_graph(seed)
        before = snapshot(g)
        out = split_fanout(g, limit)
        assert snapshot(g) == before                                # argument untouched
        assert fanout(out) <= limit < fanout(g)
        assert out.register_bits() == g.register_bits()
        for n in g:                             # consumers rewired, equally deep
            assert len({trace(g, out, e) for e in g.out_edges(n.name)}) <= 1, n.name
            assert all(trace(g, out, e)[0] == n.name for e in g.out_edges(n.name))
        assert_same_function(g, out, seed=seed)
        assert snapshot(split_fanout(g, limit)) == snapshot(out)    # deterministic

    def test_then_pipelined(self):
        """20 consumers, fan-out 3: two buf levels (0.1) over a 0.05 budget, so one register
        cut across the tree; the same function, one cycle later."""
        g = self.star(20)
        out = split_fanout(g, 3)
        result = insert_pipeline(out, 0.05)
        piped = apply_pipeline(out, result)
        assert result.latency == 1 and piped.longest_path()[0] == 0.05
        assert len({result.stages[n.name] for n in out if "/fan2_" in n.name}) == 1
        stim = stimulus(g, 20, 1)
        want, got = simulate_graph(g, stim), simulate_graph(piped, stim)
        assert got[1:] == want[:-1]

    def test_errors(self):
        g = self.star(5)
        for bad in (1, 0, True, 2.0):
            with pytest.raises(ValueError, match=f"max_fanout must be an int >= 2, got {bad!r}"):
                split_fanout(g, bad)
        g.add_node("x/fan1_0", "input", 4)
        with pytest.raises(ValueError, match="generated node name 'x/fan1_0' is already taken"):
            split_fanout(g, 2)


class TestExtractReductionTrees:
    def test_chain_of_16_becomes_depth_5(self):
        """16 two-input adds in a chain: 17 leaves arriving together -> ceil(log2 17) = 5."""
        g = chain_of_adds(16)
        out = extract_reduction_trees(g)
        before, after = g.longest_path()[0], out.longest_path()[0]
        assert (before, after) == (16 * 0.5, 5 * 0.5)
        adds = sorted(n.name for n in out if n.kind == "add")
        assert adds == sorted(["a15"] + [f"a15/sum{k}" for k in range(15)])
        assert all(out.node(n).width == 12 for n in adds)
        for k in range(16):                          # every leaf edge kept: source and slice
            (edge,) = out.out_edges(f"v{k}")
            assert edge.width == g.edge(f"v{k}", f"a{k}").width
        assert_same_function(g, out, cycles=60)

    def test_late_leaf_joins_last(self):
        """x + v0 + v1 + v2 + (p * q): the product arrives at 1.0, so the four early leaves
        pair up first (1.0) and the product meets them at the root: 1.5, where a tree balanced
        by count alone could put the product 3 adders deep (2.5)."""
        g = PrimitiveGraph()
        for name in ("x", "v0", "v1", "v2", "p", "q"):
            g.add_node(name, "input", 8, signed=name != "q")
        g.add_node("m", "mul", 12)
        g.add_edge("p", "m")
        g.add_edge("q", "m")
        prev = "x"
        for k, leaf in enumerate(("v0", "v1", "v2", "m")):
            g.add_node(f"a{k}", "add", 12)
            g.add_edge(prev, f"a{k}")
            g.add_edge(leaf, f"a{k}")
            prev = f"a{k}"
        g.add_node("y", "output", 12)
        g.add_edge("a3", "y")
        out = extract_reduction_trees(g)
        assert (g.longest_path()[0], out.longest_path()[0]) == (2.0, 1.5)
        assert "m" in [e.src for e in out.in_edges("a3")]
        assert_same_function(g, out)

    def test_tree_boundaries(self):
        """An add read twice, through a narrower edge, or by an add of another width is not
        interior: it ends (roots) a tree."""
        g = chain_of_adds(6)
        g.add_node("tap", "output", 12)
        g.add_edge("a1", "tap")                  # a1 has two consumers
        out = extract_reduction_trees(g)
        assert {"a0", "a1"} <= set(out.nodes) and {"a2", "a3", "a4"}.isdisjoint(out.nodes)
        assert_same_function(g, out)
        narrow = PrimitiveGraph()
        for name, kind, width in [("p", "input", 8), ("q", "input", 8), ("r", "input", 8),
                                  ("s", "input", 8), ("a", "add", 10), ("b", "add", 10),
                                  ("c", "add", 12), ("y", "output", 12)]:
            narrow.add_node(name, kind, width, signed=True)
        for src, dst, width in [("p", "a", 8), ("q", "a", 8), ("a", "b", 9), ("r", "b", 8),
                                ("b", "c", 10), ("s", "c", 8), ("c", "y", 12)]:
            narrow.add_edge(src, dst, width)
        assert snapshot(extract_reduction_trees(narrow)) == snapshot(narrow)

    def test_shallow_trees_and_idempotence(self):
        g = chain_of_adds(2)                     # 3 leaves: depth 2 is already the best
        assert snapshot(extract_reduction_trees(g)) == snapshot(g)
        once = extract_reduction_trees(chain_of_adds(9))
        assert snapshot(extract_reduction_trees(once)) == snapshot(once)

    def test_repeated_source_goes_through_a_buf(self):
        """(((x + y) + x) + x) + x: pairing two of the x leaves would need two x -> add edges,
        so the second passes a buf (and keeps its slice)."""
        g = PrimitiveGraph()
        g.add_node("x", "input", 6, signed=True)
        g.add_node("y", "input", 6)
        prev = "y"
        for k in range(4):
            g.add_node(f"a{k}", "add", 10)
            g.add_edge(prev, f"a{k}")
            g.add_edge("x", f"a{k}", 6 - k)
            prev = f"a{k}"
        g.add_node("out", "output", 10)
        g.add_edge(prev, "out")
        out = extract_reduction_trees(g)
        hops = [n for n in out if n.kind == "buf"]
        assert len(hops) == 1 and hops[0].name.endswith("/in1") and hops[0].signed
        assert out.longest_path()[0] < g.longest_path()[0]
        assert_same_function(g, out, cycles=64)

    def test_generated_name_taken(self):
        g = chain_of_adds(6)
        g.add_node("a5/sum0", "input", 4)
        with pytest.raises(ValueError, match="generated node name 'a5/sum0' is already taken"):
            extract_reduction_trees(g)

    def test_accumulator_feeding_a_chain(self):
        g = chain_of_adds(5)
        g.add_node("acc", "register", 12, signed=True, value=7)
        g.add_edge("a4", "acc")
        g.add_edge("acc", "a0")
        out = extract_reduction_trees(g)
        assert out.longest_path()[0] < g.longest_path()[0]
        assert_same_function(g, out, cycles=60)

    @pytest.mark.parametrize("seed", range(12))
    def test_random_graphs(self, seed):
        g = random_graph(seed, n_ops=50, chains=True)
        before = snapshot(g)
        out = extract_reduction_trees(g)
        assert snapshot(g) == before
        assert out.longest_path()[0] <= g.longest_path()[0] + 1e-9
        assert out.register_bits() == g.register_bits()
        assert_same_function(g, out, seed=seed)
        assert snapshot(extract_reduction_trees(g)) == snapshot(out)

    def test_random_graphs_have_trees_to_rebuild(self):
        """The seeds above are not vacuous: most of them rebuild at least one tree."""
        rebuilt = [any("/sum" in n.name for n in extract_reduction_trees(
            random_graph(seed, n_ops=50, chains=True))) for seed in range(12)]
        assert sum(rebuilt) >= 8


class TestPropagateConstants:
    def mode_graph(self):
        """y = mode ? a * b : a - b, with the product 16 and the difference 9 bits wide."""
        g = PrimitiveGraph()
        g.add_node("mode", "input", 1)
        g.add_node("a", "input", 8, signed=True)
        g.add_node("b", "input", 8)
        g.add_node("prod", "mul", 16, signed=True)
        g.add_node("diff", "sub", 9, signed=True)
        g.add_node("sel", "mux", 16, signed=True)
        g.add_node("y", "output", 16)
        for src, dst in [("a", "prod"), ("b", "prod"), ("a", "diff"), ("b", "diff"),
                         ("mode", "sel"), ("prod", "sel"), ("diff", "sel"), ("sel", "y")]:
            g.add_edge(src, dst)
        return g

    def test_mux_fold_drops_the_unselected_side(self):
        g = self.mode_graph()
        before = snapshot(g)
        mul_only = propagate_constants(g, {"mode": 1})
        assert snapshot(g) == before
        assert set(mul_only.nodes) == {"a", "b", "prod", "y"}      # mux bypassed, sub dead
        assert [e.src for e in mul_only.in_edges("y")] == ["prod"]
        assert_same_function(g, mul_only, fixed={"mode": 1})
        sub_only = propagate_constants(g, {"mode": 0})
        # y reads 16 bits but the mux passes only the difference's 9: it stays, as a buf
        assert set(sub_only.nodes) == {"a", "b", "diff", "sel", "y"}
        assert sub_only.node("sel").kind == "buf" and sub_only.node("sel").signed
        assert_same_function(g, sub_only, fixed={"mode": 0})

    def test_constant_operators_fold(self):
        """(k + c) * x with k fixed: the add becomes a constant of its own width."""
        g = PrimitiveGraph()
        g.add_node("k", "input", 4, signed=True)
        g.add_node("c", "const", 4, value=9)
        g.add_node("x", "input", 8)
        g.add_node("s", "add", 5, signed=True)
        g.add_node("p", "mul", 12)
        g.add_node("y", "output", 12)
        for src, dst in [("k", "s"), ("c", "s"), ("s", "p"), ("x", "p"), ("p", "y")]:
            g.add_edge(src, dst)
        out = propagate_constants(g, {"k": -3})
        assert out.node("s").kind == "const" and out.node("s").value == (9 - 3)
        assert "k" not in out and "c" not in out and out.node("s").signed
        assert_same_function(g, out, fixed={"k": -3})
        everything = propagate_constants(g, {"k": 0xF, "x": 200})   # 0xF: -1 as a pattern
        assert everything.node("p").kind == "const"
        assert everything.node("p").value == (8 * 200) & 0xFFF
        assert set(everything.nodes) == {"p", "y"}

    def test_register_folds_only_when_input_equals_init(self):
        g = PrimitiveGraph()
        g.add_node("k", "input", 8)
        for name, init in (("same", 5), ("other", 0)):
            g.add_node(name, "register", 8, value=init)
            g.add_edge("k", name)
            g.add_node(f"y_{name}", "output", 8)
            g.add_edge(name, f"y_{name}")
        out = propagate_constants(g, {"k": 5})
        assert out.node("same").kind == "const" and out.node("other").kind == "register"
        assert_same_function(g, out, fixed={"k": 5})

    def test_dead_logic_and_inputs_removed(self):
        g = self.mode_graph()
        g.add_node("unused", "input", 8)
        g.add_node("dead", "add", 8)
        g.add_edge("unused", "dead")
        g.add_edge("prod", "dead", 8)
        out = propagate_constants(g, {})
        assert set(out.nodes) == set(g.nodes) - {"unused", "dead"}
        assert_same_function(g, out)

    def test_errors(self):
        g = self.mode_graph()
        with pytest.raises(ValueError, match="fixed name 'nope' is not an input"):
            propagate_constants(g, {"nope": 0})
        with pytest.raises(ValueError, match="fixed name 'prod' is not an input"):
            propagate_constants(g, {"prod": 0})
        for bad in (2, -2, True):
            with pytest.raises(ValueError, match=f"fixed input 'mode' = {bad!r} is not a 1-bit"):
                propagate_constants(g, {"mode": bad})
        g.add_node("half", "sub", 8)
        g.add_edge("a", "half")
        with pytest.raises(ValueError, match="node half: a sub takes 2 in-edges, got 1"):
            propagate_constants(g, {})

    @pytest.mark.parametrize("seed", range(16))
    def test_random_graphs(self, seed):
        g = random_graph(seed)
        rng = random.Random(seed)
        names = [n.name for n in g if n.kind in ("input", "mem_read")]
        fixed = {n: rng.randrange(1 << g.node(n).width)
                 for n in rng.sample(names, rng.randint(1, len(names)))}
        before = snapshot(g)
        out = propagate_constants(g, fixed)
        assert snapshot(g) == before
        assert len(out) <= len(g)
        assert {n.name for n in out if n.kind in ("output", "mem_write")} == {
            n.name for n in g if n.kind in ("output", "mem_write")}
        assert_same_function(g, out, seed=seed, fixed=fixed)
        assert snapshot(propagate_constants(g, fixed)) == snapshot(out)

    def test_random_graphs_fold_muxes(self):
        """The seeds above are not vacuous: with every input fixed, no input is left, muxes
        fold and nodes go (what remains hangs off registers whose init differs)."""
        folded = removed = 0
        for seed in range(16):
            g = random_graph(seed)
            fixed = {n.name: 0 for n in g if n.kind in ("input", "mem_read")}
            out = propagate_constants(g, fixed)
            kinds = {n.name: n.kind for n in out}
            folded += sum(1 for n in g if n.kind == "mux" and kinds.get(n.name) != "mux")
            removed += len(g) - len(out)
            assert not {"input", "mem_read"} & set(kinds.values())
        assert folded > 16 and removed > 16 * 4


# ------------------------------------------------------------------------------------ pipelining
def assert_pipelined_matches(graph, budget, seed, warmup=0, cycles=30):
    """``apply_pipeline(graph, insert_pipeline(graph, budget))`` computes what ``graph`` does,
    each sink ``stages[sink]`` cycles later (every output at ``latency``: ``align_outputs``;
    inputs sit at stage 0), from cycle ``warmup`` of the original on."""
    result = insert_pipeline(graph, budget)
    piped = apply_pipeline(graph, result)
    assert all(result.stages[n.name] == 0 for n in graph if n.kind == "input")
    outputs = {result.stages[n.name] for n in graph if n.kind == "output"}
    assert outputs <= {result.latency}
    stim = stimulus(graph, cycles + max(result.stages.values()), seed)
    want, got = simulate_graph(graph, stim), simulate_graph(piped, stim)
    for sink in want[0]:
        lag = result.stages[sink]
        assert [got[t + lag][sink] for t in range(warmup, cycles)] == \
            [want[t][sink] for t in range(warmup, cycles)], sink
    return result


def register_depth(graph):
    """The most registers on a path into any sink (the graph has no register loop)."""
    depth = {}
    for name in graph.topological_order():
        node = graph.node(name)
        depth[name] = (node.kind == "register") + max(
            (depth[e.src] for e in graph.in_edges(name)), default=0)
    return max(depth.values(), default=0)


class TestPipelinePreservesFunction:
    """insert_pipeline + apply_pipeline delay every sink by its stage (outputs: the latency).
    Exact from cycle 0 for register-free graphs; a pre-existing register at stage > 0 reads
    zero-initialised pipeline registers in its first cycles, so downstream of feed-forward
    registers the outputs agree once every register has been loaded by valid data (cycle >=
    the register depth); for register loops it depends on what the loop does with those
    zeros (below: an accumulator adds them, exact again)."""

    @pytest.mark.parametrize("seed", range(8))
    def test_register_free_graphs_exact(self, seed):
        g = random_graph(seed, registers="none", memories=False)
        assert_pipelined_matches(g, 1.0, seed)

    @pytest.mark.parametrize("seed", range(6))
    def test_feed_forward_registers_after_warmup(self, seed):
        g = random_graph(seed, registers="forward", memories=False)
        assert_pipelined_matches(g, 1.0, seed, warmup=register_depth(g))

    def test_accumulator_loop_at_stage_1(self):
        g = PrimitiveGraph()
        for name, kind, width in [("x", "input", 8), ("w", "input", 8), ("m", "mul", 16),
                                  ("add", "add", 24), ("acc", "register", 24),
                                  ("y", "output", 24)]:
            g.add_node(name, kind, width, signed=True, value=0 if kind != "register" else -9)
        for src, dst in [("x", "m"), ("w", "m"), ("m", "add"), ("add", "acc"), ("acc", "add"),
                         ("acc", "y")]:
            g.add_edge(src, dst)
        result = assert_pipelined_matches(g, 1.0, seed=3)
        assert result.stages["acc"] == result.latency == 1

    @pytest.mark.parametrize("seed", range(4))
    def test_after_all_passes(self, seed):
        """Original vs reduction trees + fan-out split + pipelining: same function, delayed."""
        g = random_graph(seed, n_ops=50, registers="none", memories=False, chains=True)
        passed = split_fanout(extract_reduction_trees(g), 2)
        result = insert_pipeline(passed, 1.0)
        piped = apply_pipeline(passed, result)
        stim = stimulus(g, 40, seed)
        want, got = simulate_graph(g, stim), simulate_graph(piped, stim)
        lag = result.latency
        assert lag > 0 and got[lag:] == want[:len(want) - lag]


# ------------------------------------------------------------------------------------ lowered
class TestLoweredDesigns:
    @pytest.mark.parametrize("name", ["gemm_multicast", "gemm_os"])
    def test_structural_invariants(self, name):
        """On lowered graphs: fan-out bounded, every consumer reached from its old
        driver through equally many bufs, registers untouched, no longer critical path from
        the reduction trees, the argument untouched."""
        g = lowered(name)
        before = snapshot(g)
        split = split_fanout(g, 2)
        assert fanout(split) <= 2 and split.register_bits() == g.register_bits()
        for n in g:
            assert {trace(g, split, e)[0] for e in g.out_edges(n.name)} <= {n.name}
            assert len({trace(g, split, e) for e in g.out_edges(n.name)}) <= 1
        trees = extract_reduction_trees(g)
        assert trees.longest_path()[0] <= g.longest_path()[0] + 1e-9
        assert trees.register_bits() == g.register_bits()
        assert snapshot(g) == before

    @pytest.mark.parametrize("name", ["gemm_multicast", "gemm_os"])
    def test_simulated_when_well_formed(self, name):
        """Lowered datapaths are well formed (ports, three-input muxes, in-edge-less inputs),
        and every pass is checked on them by simulation (control inputs at 0 for
        propagate_constants)."""
        g = lowered(name)
        check_graph(g)                  # a malformed lowering fails here
        controls = {n.name: 0 for n in g if n.kind == "input" and n.width == 1}
        for out, fixed in [(split_fanout(g, 2), None), (extract_reduction_trees(g), None),
                           (propagate_constants(g, controls), controls)]:
            assert_same_function(g, out, cycles=24, fixed=fixed)
