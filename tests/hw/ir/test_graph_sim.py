"""The primitive graph's semantics, executed: every kind, signedness, slices, registers, errors."""

import random

import pytest

from hw.ir.graph_sim import as_signed, check_graph, evaluate, read_operand, simulate_graph
from hw.ir.primitive import ARITY, Node, PrimitiveGraph


def _op(kind, width, operands, *, signed=False, value=0, out_width=None):
    """``kind`` (``width`` bits) fed by inputs ``x0, x1, ..`` given as ``(width, signed)`` or
    ``(width, signed, edge_width)``, observed by output ``y``."""
    g = PrimitiveGraph()
    g.add_node("n", kind, width, signed=signed, value=value)
    for i, spec in enumerate(operands):
        g.add_node(f"x{i}", "input", spec[0], signed=spec[1])
        g.add_edge(f"x{i}", "n", spec[2] if len(spec) > 2 else None)
    g.add_node("y", "output", out_width or width)
    g.add_edge("n", "y")
    return g


def _run(graph, *rows):
    """The output ``y`` per cycle for rows of input values ``x0, x1, ..``."""
    stimulus = [{f"x{i}": v for i, v in enumerate(row)} for row in rows]
    return [out["y"] for out in simulate_graph(graph, stimulus)]


class TestAsSigned:
    def test_values(self):
        assert as_signed(0x7F, 8) == 127 and as_signed(0x80, 8) == -128
        assert as_signed(255, 8) == -1 and as_signed(-1, 8) == -1 and as_signed(1, 1) == -1
        assert as_signed(5, 4) == 5 and as_signed(-8, 4) == -8

    @pytest.mark.parametrize("value, width, match", [
        (256, 8, "value 256 is not a 8-bit pattern"),
        (-129, 8, "value -129 is not a 8-bit pattern"),
        (True, 8, "value True"),
        (1, 0, "width must be a positive int, got 0"),
    ])
    def test_errors(self, value, width, match):
        with pytest.raises(ValueError, match=match):
            as_signed(value, width)


class TestReadOperand:
    def test_slice_and_extension(self):
        assert read_operand(0b1011_0110, 4, False) == 0b0110
        assert read_operand(0b1011_1110, 4, True) == -2              # low 4 bits 1110
        assert read_operand(0b1011_0110, 4, True) == 6
        assert read_operand(0xFF, 8, False) == 255 and read_operand(0xFF, 8, True) == -1


class TestEvaluate:
    """The reference evaluation agrees with the compiled simulator on random operands."""

    CASES = [  # kind, width, operand specs, value
        ("mul", 10, [(6, True), (5, False)], 0),
        ("add", 9, [(8, True), (8, True), (3, False)], 0),
        ("sub", 7, [(8, False), (8, True, 5)], 0),
        ("mux", 8, [(2, False), (8, True), (6, False)], 0),
        ("shift", 12, [(8, True)], 3),
        ("shift", 6, [(8, True)], -2),
        ("shift", 6, [(8, False)], -2),
        ("compare", 1, [(8, True), (8, False)], 0),
        ("relu", 6, [(8, True)], 0),
        ("buf", 5, [(8, True, 6)], 0),
        ("register", 8, [(8, True)], -3),
    ]

    @pytest.mark.parametrize("kind, width, specs, value", CASES)
    def test_matches_simulation(self, kind, width, specs, value):
        graph = _op(kind, width, specs, signed=True, value=value)
        node = graph.node("n")
        rng = random.Random(kind)
        rows = [[rng.randrange(-(1 << (w - 1)), 1 << w) for w, *_ in specs] for _ in range(64)]
        operands = [[read_operand(v, s[2] if len(s) > 2 else s[0], s[1])
                     for v, s in zip(row, specs, strict=True)] for row in rows]
        want = [evaluate(node, ops) for ops in operands]
        if kind == "register":              # the output lags by one cycle, from the init
            want = [value & 0xFF] + want[:-1]
        assert _run(graph, *rows) == want

    def test_const_and_errors(self):
        assert evaluate(Node("c", "const", 8, value=-2), []) == 254
        with pytest.raises(ValueError, match="node i: a input takes its value"):
            evaluate(Node("i", "input", 8), [])
        with pytest.raises(ValueError, match="node m: a mul takes 2 in-edges, got 3"):
            evaluate(Node("m", "mul", 8), [1, 2, 3])


class TestCheckGraph:
    def test_arity_names_the_node(self):
        g = PrimitiveGraph()
        g.add_node("a", "input", 4)
        g.add_node("m", "mux", 4)
        g.add_edge("a", "m")
        with pytest.raises(ValueError, match="node m: a mux takes 3 in-edges, got 1"):
            check_graph(g)
        with pytest.raises(ValueError, match="node m: a mux takes 3 in-edges"):
            simulate_graph(g, [{"a": 0}])

    def test_add_needs_one_operand_and_mem_read_none(self):
        g = PrimitiveGraph()
        g.add_node("s", "add", 4)
        with pytest.raises(ValueError, match="node s: a add takes at least 1 in-edges, got 0"):
            check_graph(g)
        g = PrimitiveGraph()
        g.add_node("addr", "input", 4)
        g.add_node("rd", "mem_read", 4)
        g.add_edge("addr", "rd")
        with pytest.raises(ValueError, match="node rd: a mem_read takes 0 in-edges, got 1"):
            check_graph(g)
        assert ARITY["add"] == (1, None) and ARITY["mem_read"] == (0, 0)

    def test_ports_must_be_contiguous(self):
        g = _op("add", 8, [(8, False)])
        g.add_node("z", "input", 8)
        g.add_edge("z", "n", port=2)
        with pytest.raises(ValueError, match=r"node n: ports must be 0..1, got \[0, 2\]"):
            check_graph(g)


class TestSimulateGraph:
    def test_signedness_comes_from_the_source(self):
        g = _op("add", 12, [(8, True), (8, False)])
        # 0xFF is -1 from the signed x0 but 255 from the unsigned x1
        assert _run(g, [0xFF, 0xFF], [-1, 1], [0x80, 0]) == [254, 0, (-128) & 0xFFF]

    def test_edge_slices(self):
        g = _op("add", 8, [(8, True, 4), (8, False, 3)])
        # x0's low 4 bits 1110 = -2 (signed source), x1's low 3 bits 101 = 5 (unsigned)
        assert _run(g, [0b0111_1110, 0b1111_1101]) == [3]

    def test_truncation_wraps_twos_complement(self):
        assert _run(_op("mul", 8, [(8, False), (8, False)]), [16, 17]) == [(16 * 17) & 0xFF]
        assert _run(_op("sub", 4, [(4, False), (4, False)]), [1, 2]) == [0xF]
        assert _run(_op("add", 4, [(4, True), (4, True)]), [7, 1]) == [8]   # -8 as a pattern

    def test_outputs_are_patterns_and_truncate(self):
        g = _op("add", 8, [(8, True)], out_width=4)
        assert _run(g, [-3]) == [0xD] and as_signed(0xD, 4) == -3

    def test_register_init_and_delay(self):
        g = _op("register", 8, [(8, True)], value=-5)
        assert _run(g, [1], [2], [-3]) == [251, 1, 2]

    def test_accumulator_loop(self):
        g = PrimitiveGraph()
        g.add_node("x0", "input", 8, signed=True)
        g.add_node("s", "add", 16, signed=True)
        g.add_node("acc", "register", 16, signed=True, value=100)
        g.add_node("y", "output", 16)
        for src, dst in [("x0", "s"), ("acc", "s"), ("s", "acc"), ("acc", "y")]:
            g.add_edge(src, dst)
        assert [as_signed(v, 16) for v in _run(g, [5], [-7], [1], [0])] == [100, 105, 98, 99]

    def test_mux_select_nonzero(self):
        g = _op("mux", 8, [(2, True), (8, False), (8, False)])
        assert _run(g, [0, 1, 2], [1, 1, 2], [2, 1, 2], [-1, 1, 2]) == [2, 1, 1, 1]

    def test_shift_directions_and_arithmetic(self):
        assert _run(_op("shift", 8, [(8, False)], value=2), [0x41]) == [0x04]
        assert _run(_op("shift", 8, [(8, True)], value=-2), [-8]) == [(-2) & 0xFF]
        assert _run(_op("shift", 8, [(8, False)], value=-2), [0xF8]) == [0x3E]

    def test_compare_relu_buf_const(self):
        assert _run(_op("compare", 1, [(8, True), (8, False)]), [-1, 1], [3, 3]) == [1, 0]
        assert _run(_op("relu", 8, [(8, True)]), [-4], [4]) == [0, 4]
        assert _run(_op("relu", 8, [(8, False)]), [0xFC]) == [0xFC]          # unsigned: >= 0
        assert _run(_op("buf", 3, [(8, False)]), [0xFF]) == [7]
        g = _op("add", 8, [(8, False)])
        g.add_node("c", "const", 4, signed=True, value=-1)
        g.add_edge("c", "n")
        assert _run(g, [10]) == [9]

    def test_add_with_many_operands(self):
        g = _op("add", 16, [(8, True)] * 40)
        assert _run(g, list(range(-20, 20))) == [(-20) & 0xFFFF]

    def test_memory_ports(self):
        g = PrimitiveGraph()
        g.add_node("rd", "mem_read", 8)
        g.add_node("wr", "mem_write", 4)
        g.add_edge("rd", "wr")
        assert simulate_graph(g, [{"rd": 0x5A}, {"rd": -1}]) == [{"wr": 0xA}, {"wr": 0xF}]

    def test_stimulus_errors(self):
        g = _op("add", 8, [(8, False), (4, True)])
        with pytest.raises(ValueError, match="stimulus cycle 1: no value for input 'x1'"):
            simulate_graph(g, [{"x0": 1, "x1": 1}, {"x0": 1}])
        for bad in (16, -9, True, 1.0):
            with pytest.raises(ValueError, match=f"input 'x1' = {bad!r} is not a 4-bit value"):
                simulate_graph(g, [{"x0": 1, "x1": bad}])
        assert simulate_graph(g, [{"x0": 255, "x1": -8, "extra": 99}]) == [{"y": 247}]
        assert simulate_graph(g, [{"x0": 0, "x1": 15}]) == [{"y": 255}]     # 15: pattern of -1
        assert simulate_graph(g, []) == []

    def test_does_not_mutate_and_is_deterministic(self):
        g = _op("mul", 8, [(8, False), (8, True)])
        nodes, edges = g.nodes, g.edges
        assert _run(g, [3, -1]) == _run(g, [3, -1]) == [(-3) & 0xFF]
        assert g.nodes == nodes and g.edges == edges

    def test_thousands_of_nodes(self):
        """3,000 operators over 300 cycles: compiled once (its speed is the benchmarks'
        to measure, not a test's)."""
        g, rng = PrimitiveGraph(), random.Random(7)
        names = []
        for i in range(20):
            names.append(g.add_node(f"i{i}", "input", 8, signed=bool(i % 2)).name)
        for i in range(3000):
            kind = ("add", "mul", "sub", "mux", "register")[i % 5]
            node = g.add_node(f"n{i}", kind, 16, signed=True).name
            arity = {"register": 1, "mux": 3}.get(kind, 2)
            for src in rng.sample(names[-60:], arity):
                g.add_edge(src, node, min(12, g.node(src).width))
            names.append(node)
        for k in range(50):
            g.add_node(f"y{k}", "output", 16)
            g.add_edge(names[-1 - k], f"y{k}")
        stimulus = [{f"i{i}": rng.randrange(256) for i in range(20)} for _ in range(300)]
        result = simulate_graph(g, stimulus)
        assert len(result) == 300 and len(result[0]) == 50
