"""emit_graph: the Amaranth form of a primitive graph agrees with simulate_graph, cycle by
cycle, on seeded random stimulus (every kind, signed and unsigned, slices, registers)."""

import random

import pytest
from amaranth.hdl import Module, Signal

from hw.ir.graph_sim import simulate_graph
from hw.ir.primitive import PrimitiveGraph
from hw.rtl.graph_rtl import emit_graph
from tests.hw.rtl.graph_runner import run_graph_rtl


def _every_kind() -> PrimitiveGraph:
    g = PrimitiveGraph()
    g.add_node("a", "input", 8, signed=True)
    g.add_node("b", "input", 6)
    g.add_node("s", "input", 1)
    g.add_node("k", "const", 5, signed=True, value=-7)
    ops = [("mul", "mul", 12, True, 0, ["a", "b"]),
           ("add", "add", 10, True, 0, ["a", "b", "k"]),
           ("sub", "sub", 9, False, 0, ["b", "a"]),
           ("mux", "mux", 8, True, 0, ["s", "a", "k"]),
           ("shl", "shift", 10, True, 2, ["a"]),
           ("shr", "shift", 8, True, -3, ["mul"]),
           ("cmp", "compare", 1, False, 0, ["a", "k"]),
           ("relu", "relu", 8, True, 0, ["add"]),
           ("buf", "buf", 6, False, 0, ["sub"]),
           ("reg", "register", 12, True, -5, ["mul"]),
           ("acc", "register", 16, True, 3, ["acc_next"])]
    for name, kind, width, sgn, value, _ in ops:
        g.add_node(name, kind, width, signed=sgn, value=value)
    g.add_node("acc_next", "add", 16, signed=True)
    for name, *_, ins in ops:
        for src in ins:
            g.add_edge(src, name)
    g.add_edge("acc", "acc_next")
    g.add_edge("reg", "acc_next", width=7)           # a 7-bit slice of a signed register
    for name, *_ in ops + [("acc_next",)]:
        out = g.add_node(f"o_{name}", "output", g.node(name).width)
        g.add_edge(name, out.name)
    return g




class TestEmitGraph:
    def test_agrees_with_simulate_graph(self):
        g = _every_kind()
        rng = random.Random(3)
        stimulus = [{"a": rng.randrange(-128, 128), "b": rng.randrange(64),
                     "s": rng.randrange(2)} for _ in range(40)]
        stimulus[0] |= {"a": -128, "b": 63}
        expect = simulate_graph(g, stimulus)
        got = run_graph_rtl(g, stimulus)
        for t, (e, o) in enumerate(zip(expect, got, strict=True)):
            assert {n: o[n] for n in e} == e, f"cycle {t}"

    def test_inputs_must_match(self):
        g = _every_kind()
        m = Module()
        m._MustUse__silence = True                 # never elaborated
        with pytest.raises(ValueError, match="no driver for input node"):
            emit_graph(m, g, {"a": Signal(8)})
        drive = {n: Signal(8) for n in ("a", "b", "s", "zz")}
        with pytest.raises(ValueError, match="zz is not an input of the graph"):
            emit_graph(m, g, drive)
