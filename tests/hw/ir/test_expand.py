"""expand_reciprocals: the long division computes exactly what the recip primitive does,
exhaustively at small widths (signed and unsigned divisors, sliced edges, narrow results), on
a unit graph, and after LP pipelining; names and errors."""

import itertools

import pytest

from hw.ir.expand import expand_reciprocals
from hw.ir.graph_sim import simulate_graph
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from hw.ir.primitive import PrimitiveGraph
from hw.ir.units import NormalizerShape, normalizer_graph


def _recip_graph(width: int, signed: bool, edge_width: int, value: int, out_width: int):
    g = PrimitiveGraph()
    g.add_node("a", "input", width, signed=signed)
    g.add_node("r", "recip", out_width, value=value, signed=signed)
    g.add_edge("a", "r", edge_width)
    g.add_node("y", "output", out_width)
    g.add_edge("r", "y")
    g.add_node("z", "output", out_width)     # a second consumer of the recip
    g.add_edge("r", "z")
    return g


CASES = [(w, s, ew, v, ow) for w in (1, 3, 5) for s in (False, True) for ew in {1, w - 1, w}
         if ew >= 1 for v in (0, 1, 4, 7) for ow in (1, 5, v + 2)]


@pytest.mark.parametrize("width,signed,edge_width,value,out_width", CASES)
def test_long_division_equals_recip_exhaustively(width, signed, edge_width, value, out_width):
    g = _recip_graph(width, signed, edge_width, value, out_width)
    rows = [{"a": a} for a in range(1 << width)]
    assert simulate_graph(expand_reciprocals(g), rows) == simulate_graph(g, rows)


def test_expanded_normalizer_equals_the_original_and_pipelines_finer():
    g = normalizer_graph(NormalizerShape(lanes=2))
    expanded = expand_reciprocals(g)
    assert not any(n.kind == "recip" for n in expanded)
    rows = [{"den": d, "num0": n0, "num1": n1} for d, n0, n1 in itertools.product(
        (0, 1, 3, 65535, 65536, 1 << 20, (1 << 48) - 1, 123456789), (0, -5, 1 << 40),
        (7, -(1 << 47)))]
    assert simulate_graph(expanded, rows) == simulate_graph(g, rows)
    with pytest.raises(ValueError, match="budget"):
        insert_pipeline(g, 2.0)                 # the recip node alone is 4.0
    result = insert_pipeline(expanded, 2.0)
    piped = apply_pipeline(expanded, result)
    out = simulate_graph(piped, rows + [rows[-1]] * result.latency)
    assert out[result.latency:] == simulate_graph(g, rows)


def test_taken_name_is_an_error():
    g = _recip_graph(4, False, 4, 4, 6)
    g.add_node("r/a", "input", 1)
    with pytest.raises(ValueError, match="already taken"):
        expand_reciprocals(g)
