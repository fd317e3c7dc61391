"""PrimitiveGraph: construction rules, cycle detection, topological order, timing, bits."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.ir.primitive import DEFAULT_DELAY, KINDS, Edge, Node, PrimitiveGraph


def _chain(*specs):
    """Graph of nodes (name, kind[, delay]) joined in a chain, widths 8."""
    g = PrimitiveGraph()
    for spec in specs:
        g.add_node(spec[0], spec[1], 8, *spec[2:])
    for (a, *_), (b, *_) in zip(specs, specs[1:], strict=False):
        g.add_edge(a, b)
    return g


# ---------------------------------------------------------------- nodes and edges
def test_default_delays_and_override():
    assert KINDS == set(DEFAULT_DELAY)
    assert Node("m", "mul", 16).delay == 1.0
    assert Node("a", "add", 32).delay == Node("s", "sub", 32).delay == 0.5
    for kind in ("mux", "compare", "relu", "shift"):
        assert Node("x", kind, 4).delay == 0.25
    for kind in ("const", "input", "output", "register"):
        assert Node("x", kind, 4).delay == 0.0
    assert Node("m", "mul", 16, 0.7).delay == 0.7
    assert Node("i", "input", 8, 0.3).delay == 0.3           # input arrival time


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "divide"}, "unknown kind"),
    ({"width": 0}, "width"),
    ({"width": 2.0}, "width"),
    ({"width": True}, "width"),
    ({"delay": -0.1}, "delay"),
    ({"delay": math.nan}, "delay"),
    ({"delay": math.inf}, "delay"),
    ({"kind": "register", "delay": 0.1}, "delay 0"),
    ({"kind": "const", "delay": 0.1}, "delay 0"),
    ({"name": ""}, "name"),
])
def test_bad_node_fields(kwargs, match):
    fields = {"name": "n", "kind": "add", "width": 8, "delay": None} | kwargs
    with pytest.raises(ValueError, match=match):
        PrimitiveGraph().add_node(**fields)


def test_construction_errors():
    g = _chain(("i", "input"), ("m", "mul"), ("o", "output"))
    g.add_node("c", "const", 4)
    g.add_node("w", "mem_write", 8)
    with pytest.raises(ValueError, match="duplicate node name 'm'"):
        g.add_node("m", "add", 8)
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        g.add_edge("i", "nope")
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        g.add_edge("nope", "m")
    with pytest.raises(ValueError, match="duplicate edge i -> m"):
        g.add_edge("i", "m")
    with pytest.raises(ValueError, match="input node has no inputs"):
        g.add_edge("m", "i")
    with pytest.raises(ValueError, match="const node has no inputs"):
        g.add_edge("m", "c")
    with pytest.raises(ValueError, match="output node has no outputs"):
        g.add_edge("o", "w")
    with pytest.raises(ValueError, match="width"):
        g.add_edge("c", "m", 5)                                  # wider than the source
    with pytest.raises(ValueError, match="width"):
        g.add_edge("c", "m", 0)
    assert g.add_edge("c", "m") == Edge("c", "m", 4, 1)        # defaults: source width, port
    g.add_edge("m", "w")
    with pytest.raises(ValueError, match="mem_write node has no outputs"):
        g.add_edge("w", "o")
    assert len(g) == 5 and len(g.edges) == 4 and "m" in g and "x" not in g


def test_combinational_cycle_rejected_register_cycle_allowed():
    g = _chain(("a", "add"), ("b", "mux"), ("c", "add"))
    with pytest.raises(ValueError, match="combinational cycle"):
        g.add_edge("c", "a")
    with pytest.raises(ValueError, match="combinational cycle"):
        g.add_edge("b", "b")
    assert len(g.edges) == 2                                   # unchanged by the failures
    g.add_node("r", "register", 8)
    g.add_edge("c", "r")
    g.add_edge("r", "a")                                       # accumulator loop: fine
    g.add_edge("r", "r")                                       # a register holding itself
    assert len(g.edges) == 5


def test_cycle_detected_after_reordering():
    """Edges added against insertion order make the incremental order move nodes."""
    g = PrimitiveGraph()
    for name in "abcd":
        g.add_node(name, "add", 8)
    g.add_edge("d", "c")
    g.add_edge("c", "b")
    g.add_edge("b", "a")
    with pytest.raises(ValueError, match="combinational cycle"):
        g.add_edge("a", "d")
    order = g.topological_order()
    assert order == ["d", "c", "b", "a"]


def _comb_reaches(edges, kinds, start, goal):
    if kinds[start] == "register" or kinds[goal] == "register":
        return False
    seen, todo = {start}, [start]
    while todo:
        x = todo.pop()
        if x == goal:
            return True
        for a, b in edges:
            if a == x and b not in seen and kinds[b] != "register":
                seen.add(b)
                todo.append(b)
    return False


def _check_order(g):
    order = g.topological_order()
    assert sorted(order) == sorted(g.nodes)
    pos = {n: i for i, n in enumerate(order)}
    for e in g.edges:
        if g.node(e.src).kind != "register":
            assert pos[e.src] < pos[e.dst]
    return pos


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["add", "mux", "register"]), min_size=1, max_size=7),
       st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25))
def test_cycle_check_matches_naive_search(kinds, pairs):
    g = PrimitiveGraph()
    for i, kind in enumerate(kinds):
        g.add_node(str(i), kind, 4)
    edges = []
    for a, b in pairs:
        if a >= len(kinds) or b >= len(kinds):
            continue
        a, b = str(a), str(b)
        names = {str(i): k for i, k in enumerate(kinds)}
        if (a, b) in edges:
            with pytest.raises(ValueError, match="duplicate"):
                g.add_edge(a, b)
        elif _comb_reaches(edges, names, b, a):
            with pytest.raises(ValueError, match="combinational cycle"):
                g.add_edge(a, b)
        else:
            g.add_edge(a, b)
            edges.append((a, b))
        _check_order(g)


# ---------------------------------------------------------------- order and timing
def test_topological_order_is_deterministic_and_complete():
    g = PrimitiveGraph()
    g.add_node("x", "input", 8)
    g.add_node("r", "register", 16)
    g.add_node("add", "add", 16)
    g.add_node("m", "mul", 16)
    g.add_node("y", "output", 16)
    for a, b in [("x", "m"), ("m", "add"), ("r", "add"), ("add", "r"), ("add", "y")]:
        g.add_edge(a, b)
    pos = _check_order(g)
    assert pos["x"] < pos["m"] < pos["add"] < pos["y"] and pos["add"] < pos["r"]
    assert g.topological_order() == g.topological_order()
    acyclic = _chain(("i", "input"), ("r", "register"), ("a", "add"), ("o", "output"))
    assert acyclic.topological_order() == ["i", "r", "a", "o"]   # every edge forward


def test_longest_path_resets_at_registers():
    g = _chain(("i", "input"), ("m", "mul"), ("a1", "add"), ("r", "register"),
               ("a2", "add"), ("s", "shift"), ("o", "output"))
    delay, path = g.longest_path()
    assert delay == 1.5 and path == ["i", "m", "a1", "r"]
    g.add_node("m2", "mul", 8, 1.2)
    g.add_edge("r", "m2")
    g.add_edge("m2", "a2")
    assert g.longest_path() == (1.2 + 0.5 + 0.25, ["r", "m2", "a2", "s", "o"])
    assert PrimitiveGraph().longest_path() == (0.0, [])


def test_longest_path_takes_the_slowest_branch_and_loops():
    g = PrimitiveGraph()
    for name, kind in [("x", "input"), ("m", "mul"), ("sh", "shift"), ("a", "add"),
                       ("acc", "register"), ("mx", "mux")]:
        g.add_node(name, kind, 8)
    for a, b in [("x", "m"), ("x", "sh"), ("m", "a"), ("sh", "a"), ("a", "mx"),
                 ("mx", "acc"), ("acc", "a")]:
        g.add_edge(a, b)
    assert g.longest_path() == (1.75, ["x", "m", "a", "mx", "acc"])


def test_register_bits():
    g = _chain(("i", "input"), ("r1", "register"), ("a", "add"))
    g.add_node("r2", "register", 32)
    g.add_edge("a", "r2", 8)
    assert g.register_bits() == 8 + 32
    assert PrimitiveGraph().register_bits() == 0


def test_strong_components():
    g = PrimitiveGraph()
    for name, kind in [("x", "input"), ("a", "add"), ("r", "register"), ("m", "mux"),
                       ("y", "output")]:
        g.add_node(name, kind, 8)
    for a, b in [("x", "a"), ("a", "m"), ("m", "r"), ("r", "a"), ("m", "y")]:
        g.add_edge(a, b)
    comp = g.strong_components()
    assert comp["a"] == comp["m"] == comp["r"]
    assert len({comp["x"], comp["a"], comp["y"]}) == 3
    assert sorted(set(comp.values())) == [0, 1, 2]


# ---------------------------------------------------------------- semantics fields and ports
class TestNodeSemanticsFields:
    def test_defaults_and_buf_kind(self):
        node = Node("n", "add", 8)
        assert node.signed is False and node.value == 0
        assert "buf" in KINDS and Node("b", "buf", 4).delay == DEFAULT_DELAY["buf"] == 0.05
        assert Node("c", "const", 8, signed=True, value=-128).value == -128
        assert Node("c", "const", 8, value=255).value == 255
        assert Node("s", "shift", 8, value=-3).value == -3          # right by 3

    @pytest.mark.parametrize("kwargs, match", [
        ({"signed": 1}, "signed must be a bool"),
        ({"value": True}, "value must be an int"),
        ({"value": 1.0}, "value must be an int"),
        ({"kind": "const", "value": 256}, "value 256 does not fit 8 bits"),
        ({"kind": "const", "value": -129}, "value -129 does not fit 8 bits"),
        ({"kind": "register", "value": 300}, "value 300 does not fit 8 bits"),
    ])
    def test_bad_fields(self, kwargs, match):
        fields = {"name": "n", "kind": "add", "width": 8} | kwargs
        with pytest.raises(ValueError, match=match):
            PrimitiveGraph().add_node(**fields)


class TestEdgePorts:
    def _graph(self):
        g = PrimitiveGraph()
        for name in ("a", "b", "c"):
            g.add_node(name, "input", 8)
        g.add_node("m", "mux", 8)
        return g

    def test_default_port_counts_in_edges(self):
        g = self._graph()
        assert [g.add_edge(s, "m").port for s in ("a", "b", "c")] == [0, 1, 2]

    def test_in_edges_sorted_by_port(self):
        g = self._graph()
        g.add_edge("a", "m", port=2)
        g.add_edge("b", "m", port=0)
        g.add_edge("c", "m", 4, port=1)
        assert [(e.src, e.port) for e in g.in_edges("m")] == [("b", 0), ("c", 1), ("a", 2)]
        assert g.edge("c", "m") == Edge("c", "m", 4, 1)
        assert [e.src for e in g.edges] == ["a", "b", "c"]          # insertion order kept

    def test_port_errors_leave_the_graph_unchanged(self):
        g = self._graph()
        g.add_edge("a", "m", port=1)
        with pytest.raises(ValueError, match="port 1 of m is already taken"):
            g.add_edge("b", "m")                                 # default 1: taken
        for bad in (-1, True, 1.0):
            with pytest.raises(ValueError, match="port must be an int >= 0"):
                g.add_edge("b", "m", port=bad)
        assert g.in_edges("m") == [Edge("a", "m", 8, 1)] and len(g.edges) == 1


class TestCopy:
    def test_copy_is_equal_and_independent(self):
        g = _chain(("i", "input"), ("a", "add"), ("o", "output"))
        g.add_node("c", "const", 8, signed=True, value=-2)
        g.add_edge("c", "a", 4, port=5)
        h = g.copy()
        assert h.nodes == g.nodes and h.edges == g.edges
        assert h.topological_order() == g.topological_order()
        h.add_node("r", "register", 8)
        h.add_edge("a", "r")
        assert "r" not in g and len(g.out_edges("a")) == 1 and len(h.out_edges("a")) == 2
        h.add_node("b", "add", 8)
        h.add_edge("a", "b")
        with pytest.raises(ValueError, match="combinational cycle"):    # the copied order
            h.add_edge("b", "a")
