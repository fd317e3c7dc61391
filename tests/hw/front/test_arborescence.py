"""Minimum spanning arborescence against brute force, hand examples and the error contract."""

import itertools
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.front.arborescence import minimum_arborescence


def _brute_force(nodes, edges, root):
    """Cheapest cost over every choice of one in-edge per non-root node; None if no tree."""
    cheapest = {}
    for u, v, c in edges:
        if u != v and v != root and ((u, v) not in cheapest or c < cheapest[(u, v)]):
            cheapest[(u, v)] = c
    others = [v for v in nodes if v != root]
    choices = [[(u, c) for (u, w), c in cheapest.items() if w == v] for v in others]
    best = None
    for combo in itertools.product(*choices):
        parent = {v: u for v, (u, _) in zip(others, combo, strict=True)}
        if all(_reaches_root(parent, v, root) for v in others):
            cost = sum(c for _, c in combo)
            best = cost if best is None else min(best, cost)
    return best


def _reaches_root(parent, v, root):
    seen = set()
    while v != root:
        if v in seen:
            return False
        seen.add(v)
        v = parent[v]
    return True


def _check_tree(result, nodes, edges, root):
    """Every non-root node has one parent through a real edge of that cost, and no cycle."""
    assert list(result) == [v for v in nodes if v != root]
    for v, (u, c) in result.items():
        assert (u, v, c) in edges and u != v
        assert c == min(w for a, b, w in edges if (a, b) == (u, v))
        assert _reaches_root({k: p for k, (p, _) in result.items()}, v, root)


def _cost(result):
    return sum(c for _, c in result.values())


@st.composite
def _graphs(draw, costs=None):
    costs = st.integers(0, 9) if costs is None else costs
    n = draw(st.integers(1, 6))
    nodes = [f"n{i}" for i in range(n)]
    root = draw(st.sampled_from(nodes))
    node = st.sampled_from(nodes)
    edges = draw(st.lists(st.tuples(node, node, costs), max_size=18))
    return nodes, edges, root


class TestAgainstBruteForce:
    @settings(max_examples=200, deadline=None)
    @given(_graphs())
    def test_integer_costs(self, graph):
        nodes, edges, root = graph
        best = _brute_force(nodes, edges, root)
        if best is None:
            with pytest.raises(ValueError, match="cannot be reached from root"):
                minimum_arborescence(nodes, edges, root)
            return
        result = minimum_arborescence(nodes, edges, root)
        _check_tree(result, nodes, edges, root)
        assert _cost(result) == best

    @settings(max_examples=100, deadline=None)
    @given(_graphs(costs=st.floats(0, 100, allow_nan=False)))
    def test_float_costs(self, graph):
        nodes, edges, root = graph
        best = _brute_force(nodes, edges, root)
        if best is None:
            return
        result = minimum_arborescence(nodes, edges, root)
        _check_tree(result, nodes, edges, root)
        assert _cost(result) == pytest.approx(best, rel=1e-9, abs=1e-9)

    @settings(max_examples=60, deadline=None)
    @given(_graphs(), st.randoms(use_true_random=False))
    def test_edge_order_changes_ties_not_cost(self, graph, rnd):
        nodes, edges, root = graph
        if _brute_force(nodes, edges, root) is None:
            return
        shuffled = list(edges)
        rnd.shuffle(shuffled)
        assert _cost(minimum_arborescence(nodes, shuffled, root)) == \
            _cost(minimum_arborescence(nodes, edges, root))


class TestHandExamples:
    def test_no_cycle_is_greedy(self):
        edges = [("m", "a", 5), ("m", "b", 5), ("a", "b", 1), ("b", "c", 2), ("a", "c", 3)]
        assert minimum_arborescence(["m", "a", "b", "c"], edges, "m") == {
            "a": ("m", 5), "b": ("a", 1), "c": ("b", 2)}

    def test_cycle_contracted(self):
        # Greedy picks b <- c and c <- b (cost 1 each): a cycle. Entering it at b from a costs
        # 3 - 1 = 2 extra, at c from a 6 - 1 = 5, at b from r 20 - 1 = 19: enter at b from a.
        edges = [("r", "a", 5), ("r", "b", 20), ("a", "b", 3), ("a", "c", 6),
                 ("b", "c", 1), ("c", "b", 1), ("c", "d", 2), ("r", "d", 8)]
        result = minimum_arborescence(["r", "a", "b", "c", "d"], edges, "r")
        assert result == {"a": ("r", 5), "b": ("a", 3), "c": ("b", 1), "d": ("c", 2)}
        assert _cost(result) == _brute_force(["r", "a", "b", "c", "d"], edges, "r") == 11

    def test_three_cycle_all_entries_equal(self):
        # The textbook triangle: every entry costs the same, the first edge given wins.
        cyc = [(1, 2, 1), (2, 3, 1), (3, 1, 1)]
        roots = [(0, 1, 10), (0, 2, 10), (0, 3, 10)]
        assert minimum_arborescence([0, 1, 2, 3], roots + cyc, 0) == {
            1: (0, 10), 2: (1, 1), 3: (2, 1)}
        assert minimum_arborescence([0, 1, 2, 3], roots[::-1] + cyc, 0) == {
            1: (3, 1), 2: (1, 1), 3: (0, 10)}

    def test_nested_contraction(self):
        # {a, b} is a cycle; contracted, it forms a second cycle with c (c -> a, a -> c).
        edges = [("a", "b", 1), ("b", "a", 1), ("c", "a", 2), ("a", "c", 1),
                 ("r", "a", 10), ("r", "b", 10), ("r", "c", 10)]
        nodes = ["r", "a", "b", "c"]
        assert minimum_arborescence(nodes, edges, "r") == {
            "a": ("r", 10), "b": ("a", 1), "c": ("a", 1)}
        swapped = edges[:4] + [("r", "b", 10), ("r", "a", 10), ("r", "c", 10)]
        assert minimum_arborescence(nodes, swapped, "r") == {
            "a": ("b", 1), "b": ("r", 10), "c": ("a", 1)}

    def test_parallel_edges_self_loops_and_root_edges(self):
        edges = [("r", "a", 4), ("r", "a", 2), ("r", "a", 2.0), ("a", "a", 0), ("a", "r", 0)]
        result = minimum_arborescence(["r", "a"], edges, "r")
        assert result == {"a": ("r", 2)} and type(result["a"][1]) is int

    def test_single_node(self):
        assert minimum_arborescence(["r"], [("r", "r", 1)], "r") == {}


class TestDeterminism:
    def test_repeatable(self):
        nodes, edges = _grid(6, 6)
        first = minimum_arborescence(nodes, edges, "mem")
        assert all(minimum_arborescence(nodes, edges, "mem") == first for _ in range(3))
        assert list(first) == nodes[1:]

    def test_independent_of_hash_seed(self):
        code = ("from hw.front.arborescence import minimum_arborescence as m\n"
                "n = ['mem'] + [f'fu{i}' for i in range(12)]\n"
                "e = [('mem', v, 9) for v in n[1:]] + [(a, b, 3) for a in n[1:] for b in n[1:]]\n"
                "print(sorted(m(n, e, 'mem').items()))\n")
        outs = set()
        for seed in ("1", "2"):
            env = dict(os.environ, PYTHONHASHSEED=seed)
            outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                    capture_output=True, text=True).stdout)
        assert len(outs) == 1


class TestErrors:
    def test_unreachable_named(self):
        with pytest.raises(ValueError, match=r"2 node\(s\) cannot be reached from root 'r': "
                                             r"'b', 'c'"):
            minimum_arborescence(["r", "a", "b", "c"], [("r", "a", 1), ("b", "c", 1)], "r")

    def test_only_edge_into_root_does_not_reach(self):
        with pytest.raises(ValueError, match="cannot be reached.*'a'"):
            minimum_arborescence(["r", "a"], [("a", "r", 1)], "r")

    def test_root_not_in_nodes(self):
        with pytest.raises(ValueError, match="root 'x' is not one of the nodes"):
            minimum_arborescence(["r"], [], "x")

    def test_unknown_node_named(self):
        with pytest.raises(ValueError, match="names unknown node 'zz'"):
            minimum_arborescence(["r", "a"], [("r", "a", 1), ("zz", "a", 1)], "r")

    @pytest.mark.parametrize("cost", [math.nan, -1, -0.5, math.inf])
    def test_bad_cost(self, cost):
        with pytest.raises(ValueError, match="costs must be finite and non-negative"):
            minimum_arborescence(["r", "a"], [("r", "a", cost)], "r")

    def test_bad_cost_on_ignored_edge_still_rejected(self):
        with pytest.raises(ValueError, match="edge #1 'a' -> 'a' has cost nan"):
            minimum_arborescence(["r", "a"], [("r", "a", 1), ("a", "a", math.nan)], "r")

    def test_non_numeric_cost(self):
        with pytest.raises(TypeError, match="non-numeric cost '1'"):
            minimum_arborescence(["r", "a"], [("r", "a", "1")], "r")

    def test_duplicate_node(self):
        with pytest.raises(ValueError, match="node 'a' is listed twice"):
            minimum_arborescence(["r", "a", "a"], [], "r")

    def test_malformed_edge(self):
        with pytest.raises(ValueError, match=r"edge #0 must be \(source, target, cost\)"):
            minimum_arborescence(["r", "a"], [("r", "a")], "r")


def _grid(rows, cols, hop=8, mem=32):
    """FU grid with reuse edges both ways between neighbours, plus a memory edge to each FU."""
    nodes = ["mem"] + [(i, j) for i in range(rows) for j in range(cols)]
    edges = []
    for i in range(rows):
        for j in range(cols):
            edges.append(("mem", (i, j), mem))
            for a, b in (((i, j + 1), (i, j)), ((i + 1, j), (i, j))):
                if a[0] < rows and a[1] < cols:
                    edges += [(a, b, hop), (b, a, hop)]
    return nodes, edges


class TestScale:
    def test_32x32_grid(self):
        # Mutual neighbour edges make the greedy choice all 2-cycles: the contraction path.
        nodes, edges = _grid(32, 32)
        assert len(nodes) == 1025 and len(edges) == 4992
        result = minimum_arborescence(nodes, edges, "mem")
        assert _cost(result) == 32 + 1023 * 8
        assert sum(1 for p, _ in result.values() if p == "mem") == 1

    def test_32x32_directed_grid(self):
        nodes, edges = _grid(32, 32)
        forward = [(u, v, c) for u, v, c in edges if u == "mem" or u < v]
        result = minimum_arborescence(nodes, forward, "mem")
        assert _cost(result) == 32 + 1023 * 8 and result[(0, 0)] == ("mem", 32)
