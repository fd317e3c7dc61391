"""The primitive kinds max, min, clamp, shl_var, shr_var, lod, rom, recip: exhaustive semantics at
small widths (the reference evaluation and the compiled simulator against an independent
reference written here), node validation, constant folding and LP pipelining."""

import itertools
import random
from fractions import Fraction

import pytest

from hw.ir.graph_sim import evaluate, simulate_graph
from hw.ir.kinds import KIND_TABLE
from hw.ir.passes import propagate_constants, split_fanout
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from hw.ir.primitive import ARITY, DEFAULT_DELAY, KINDS, Node, PrimitiveGraph

NEW = {  # kind: (arity, default delay)
    "max": (2, 0.25), "min": (2, 0.25), "clamp": (1, 0.25), "shl_var": (2, 0.5),
    "shr_var": (2, 0.5), "lod": (1, 0.5), "rom": (1, 0.5), "recip": (1, 4.0),
}
SOURCE_BITS = 4             # every operand is a slice of a 4-bit input: all its patterns occur


# ------------------------------------------------------------------------------ the reference
def read(pattern: int, width: int, signed: bool) -> int:
    """What a port reads: the low ``width`` bits, two's complement if ``signed``."""
    low = pattern % 2 ** width
    return low - 2 ** width if signed and low >= 2 ** (width - 1) else low


def reference(kind: str, node: Node, ops: list[int]) -> int:
    """The table of the task, in plain Python, then cut to the node's width."""
    a = ops[0]
    b = ops[1] if len(ops) > 1 else None
    v = node.value
    if kind == "max":
        r = a if a >= b else b
    elif kind == "min":
        r = a if a <= b else b
    elif kind == "clamp":
        lo, hi = (-2 ** (v - 1), 2 ** (v - 1) - 1) if node.signed else (0, 2 ** v - 1)
        r = lo if a < lo else hi if a > hi else a
    elif kind == "shl_var":
        r = a * 2 ** (b if b > 0 else 0)
    elif kind == "shr_var":
        r = Fraction(a, 2 ** (b if b > 0 else 0)).__floor__()
    elif kind == "lod":
        r, m = 0, -a if a < 0 else a
        while m:
            r, m = r + 1, m // 2
    elif kind == "rom":
        r = node.table[a] if 0 <= a < len(node.table) else 0
    elif kind == "recip":
        r = (Fraction(2 ** v, a) + Fraction(1, 2)).__floor__() if a > 0 else 0
    else:
        raise AssertionError(kind)
    return r % 2 ** node.width


# ------------------------------------------------------------------------------ exhaustive
def _edge_specs(arity: int):
    """Per port ``(edge width, source signed)``: widths 1..4, both signednesses."""
    one = list(itertools.product(range(1, SOURCE_BITS + 1), (False, True)))
    return list(itertools.product(one, repeat=arity))


def _node_variants(kind: str) -> list[dict]:
    """Node fields to sweep: widths narrower and wider than the exact result, values, tables."""
    rng = random.Random(kind)
    if kind in ("max", "min", "shr_var"):
        return [{"width": w, "signed": s} for w in (1, 3, 6) for s in (False, True)]
    if kind == "shl_var":
        return [{"width": w, "signed": s} for w in (1, 3, 8, 20) for s in (False, True)]
    if kind == "lod":
        return [{"width": w} for w in (1, 2, 3, 5)]
    if kind == "clamp":
        return [{"width": w, "signed": s, "value": v} for w in (1, 2, 3, 6)
                for s in (False, True) for v in range(1, w + 1)]
    if kind == "recip":
        return [{"width": w, "value": v} for w in (1, 3, 6, 10) for v in (0, 1, 3, 5, 8, 62)]
    if kind == "rom":
        out = []
        for width, n in [(3, 1), (3, 3), (5, 5), (6, 8), (4, 16), (7, 20)]:
            table = tuple(rng.randrange(-2 ** (width - 1), 2 ** width) for _ in range(n))
            out.append({"width": width, "table": table, "signed": n % 2 == 0})
        return out
    raise AssertionError(kind)


def _sweep_graph(kind: str):
    """One graph per kind: inputs ``x`` (port 0) and ``y`` (port 1) of 4 bits, each also read
    through a signed ``buf``; a node per (edge specs, node variant) with its own output.
    Returns the graph and ``[(node name, [(edge width, signed)...])]``."""
    arity = NEW[kind][0]
    g = PrimitiveGraph()
    sources = []
    for port in range(arity):
        name = "xy"[port]
        g.add_node(name, "input", SOURCE_BITS)
        g.add_node(f"{name}s", "buf", SOURCE_BITS, signed=True)
        g.add_edge(name, f"{name}s")
        sources.append({False: name, True: f"{name}s"})
    cases = []
    for i, specs in enumerate(_edge_specs(arity)):
        for j, fields in enumerate(_node_variants(kind)):
            name = f"n{i}_{j}"
            g.add_node(name, kind, **fields)
            for port, (width, signed) in enumerate(specs):
                g.add_edge(sources[port][signed], name, width)
            g.add_node(f"o_{name}", "output", fields["width"])
            g.add_edge(name, f"o_{name}")
            cases.append((name, list(specs)))
    return g, cases


@pytest.mark.parametrize("kind", sorted(NEW))
def test_exhaustive_against_reference(kind):
    """Every operand pattern at edge widths 1..4, signed and unsigned sources, several node
    widths/values/tables: ``evaluate`` and ``simulate_graph`` both equal the reference."""
    g, cases = _sweep_graph(kind)
    arity = NEW[kind][0]
    rows = [dict(zip("xy", p, strict=False))
            for p in itertools.product(range(2 ** SOURCE_BITS), repeat=arity)]
    simulated = simulate_graph(g, rows)
    checked = 0
    for name, specs in cases:
        node = g.node(name)
        for row, out in zip(rows, simulated, strict=True):
            ops = [read(row["xy"[port]], w, s) for port, (w, s) in enumerate(specs)]
            want = reference(kind, node, ops)
            assert evaluate(node, ops) == want, (name, node, ops)
            assert out[f"o_{name}"] == want, (name, node, ops)
            checked += 1
    assert checked >= 16 * len(cases)
    assert len({tuple(specs) for _, specs in cases}) == (2 * SOURCE_BITS) ** arity


@pytest.mark.parametrize("kind", sorted(NEW))
def test_constant_operands_compile(kind):
    """Operands from ``const`` nodes become literals in the compiled step (negative ones
    included: ``(-3).bit_length()``, ``-3 >> 1``); they agree with the reference."""
    arity = NEW[kind][0]
    fields = {"rom": {"table": (3, -1, 7, 0, 2)}, "clamp": {"value": 3, "signed": True},
              "recip": {"value": 4}}.get(kind, {})
    for values in itertools.product(range(-4, 4), repeat=arity):
        for signed in (False, True):
            g = PrimitiveGraph()
            node = g.add_node("n", kind, 6, **fields)
            for port, value in enumerate(values):
                g.add_node(f"c{port}", "const", 3, signed=signed, value=value)
                g.add_edge(f"c{port}", "n")
            g.add_node("y", "output", 6)
            g.add_edge("n", "y")
            ops = [read(v, 3, signed) for v in values]
            assert simulate_graph(g, [{}]) == [{"y": reference(kind, node, ops)}], values


def test_shift_amounts_far_past_the_width():
    """Wide shift amounts (a 40-bit amount edge): shl by >= width is 0, shr gives the sign
    fill; negative amounts shift by 0; nothing allocates a 2**40-bit integer."""
    g = PrimitiveGraph()
    g.add_node("a", "input", 8, signed=True)
    g.add_node("b", "input", 40, signed=True)
    for kind in ("shl_var", "shr_var"):
        g.add_node(kind, kind, 8, signed=True)
        g.add_edge("a", kind)
        g.add_edge("b", kind)
        g.add_node(f"o_{kind}", "output", 8)
        g.add_edge(kind, f"o_{kind}")
    amounts = [0, 1, 7, 8, 9, 2 ** 39 - 1, -1, -(2 ** 39)]
    rows = [{"a": a, "b": b} for a in (-128, -5, -1, 0, 3, 127) for b in amounts]
    for row, out in zip(rows, simulate_graph(g, rows), strict=True):
        a, b = row["a"], row["b"]
        shl = 0 if b >= 8 else (a << max(b, 0)) & 0xFF
        shr = (-1 if a < 0 else 0) & 0xFF if b >= 8 else (a >> max(b, 0)) & 0xFF
        assert out == {"o_shl_var": shl, "o_shr_var": shr}, row
        for kind, want in (("shl_var", shl), ("shr_var", shr)):
            assert evaluate(g.node(kind), [a, b]) == want


def test_reference_spot_values():
    """The reference itself on hand-computed values (so the sweep cannot pass vacuously)."""
    def n(kind, width, **kw):
        return Node("n", kind, width, **kw)
    assert reference("clamp", n("clamp", 8, signed=True, value=4), [100]) == 7
    assert reference("clamp", n("clamp", 8, signed=True, value=4), [-100]) == 0xF8   # -8
    assert reference("clamp", n("clamp", 8, value=4), [-100]) == 0
    assert reference("shr_var", n("shr_var", 8), [-5, 1]) == (-3) & 0xFF
    assert reference("lod", n("lod", 4), [-8]) == 4 and reference("lod", n("lod", 4), [0]) == 0
    assert reference("recip", n("recip", 8, value=4), [3]) == 5        # 16 / 3 = 5.33
    assert reference("recip", n("recip", 8, value=3), [16]) == 1       # 0.5 rounds up
    assert reference("recip", n("recip", 8, value=3), [17]) == 0
    assert reference("recip", n("recip", 4, value=4), [1]) == 0        # 16 cut to 4 bits
    assert reference("rom", n("rom", 4, table=(1, -2)), [1]) == 14
    assert reference("rom", n("rom", 4, table=(1, -2)), [-1]) == 0


# ------------------------------------------------------------------------------ the tables
def test_kind_table_facts():
    for kind, (arity, delay) in NEW.items():
        assert kind in KINDS and ARITY[kind] == (arity, arity)
        assert DEFAULT_DELAY[kind] == delay == KIND_TABLE[kind].delay
        extra = {"table": (0,)} if kind == "rom" else {}
        assert Node("n", kind, 8, value=1, **extra).delay == delay
    assert set(KIND_TABLE) == KINDS == set(DEFAULT_DELAY) == set(ARITY)
    import hw.ir.kinds as kinds
    for kind in KINDS:                              # the semantics table names every kind
        assert f"\n    {kind} " in kinds.__doc__


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("fields, match", [
    ({"kind": "clamp", "value": 0}, r"node n: a clamp saturates to 1 \.\. 8 bits \(its width\), "
                                    "got value 0"),
    ({"kind": "clamp", "value": 9}, "a clamp saturates to 1 .. 8 bits"),
    ({"kind": "clamp", "value": -1}, "a clamp saturates to"),
    ({"kind": "recip", "value": 63}, r"node n: a recip's scale exponent \(value\) must be in "
                                     r"0 \.\. 62, got 63"),
    ({"kind": "recip", "value": -1}, "must be in 0 .. 62, got -1"),
    ({"kind": "rom"}, "node n: a rom needs a non-empty table"),
    ({"kind": "rom", "table": ()}, "a rom needs a non-empty table"),
    ({"kind": "rom", "table": (1, 256)}, r"node n: table\[1\] = 256 does not fit 8 bits"),
    ({"kind": "rom", "table": (-129,)}, r"table\[0\] = -129 does not fit 8 bits"),
    ({"kind": "rom", "table": (1, True)}, r"table\[1\] must be an int, got True"),
    ({"kind": "rom", "table": (1.0,)}, r"table\[0\] must be an int, got 1.0"),
    ({"kind": "rom", "table": "ab"}, "table must be a tuple of ints, got str"),
    ({"kind": "add", "table": (1,)}, "node n: only a rom has a table, not a add"),
    ({"kind": "const", "table": (1,)}, "only a rom has a table, not a const"),
])
def test_validation_errors(fields, match):
    fields = {"name": "n", "width": 8} | fields
    with pytest.raises(ValueError, match=match):
        Node(**fields)
    with pytest.raises(ValueError, match=match):
        PrimitiveGraph().add_node(**fields)


def test_valid_fields_at_the_limits():
    assert Node("c", "clamp", 8, value=8).value == 8 and Node("c", "clamp", 1, value=1)
    assert Node("r", "recip", 2, value=62).value == 62 and Node("r", "recip", 2).value == 0
    rom = Node("r", "rom", 8, table=[-128, 255, 0])         # a list is stored as a tuple
    assert rom.table == (-128, 255, 0) and hash(rom) == hash(Node("r", "rom", 8,
                                                                  table=(-128, 255, 0)))
    assert Node("a", "add", 8).table == ()
    g = PrimitiveGraph()
    assert g.add_node("r", "rom", 4, None, False, 0, (1, 2)).table == (1, 2)   # positional


# ------------------------------------------------------------------------------ passes
def _mixed_graph() -> PrimitiveGraph:
    """x (8-bit signed), y (8-bit unsigned), k (4-bit signed) through every new kind:
    lod(x) -> shr_var(y, lod) -> recip -> mul(., x) -> clamp; max, min, shl_var, rom."""
    g = PrimitiveGraph()
    g.add_node("x", "input", 8, signed=True)
    g.add_node("y", "input", 8)
    g.add_node("k", "input", 4, signed=True)
    nodes = [  # name, kind, width, signed, fields, sources (edge widths: None = full)
        ("l", "lod", 4, False, {}, [("x", None)]),
        ("sh", "shr_var", 8, False, {}, [("y", None), ("l", None)]),
        ("r", "recip", 12, False, {"value": 10}, [("sh", None)]),
        ("m", "mul", 16, True, {}, [("r", None), ("x", None)]),
        ("c", "clamp", 12, True, {"value": 10}, [("m", None)]),
        ("mx", "max", 12, True, {}, [("c", None), ("x", None)]),
        ("mn", "min", 9, True, {}, [("mx", None), ("k", None)]),
        ("sl", "shl_var", 10, True, {}, [("x", None), ("k", 3)]),
        ("rm", "rom", 6, False, {"table": (5, -3, 17, 0, 31, -32, 9, 1, 2)}, [("l", None)]),
        ("cu", "clamp", 5, False, {"value": 4}, [("sl", None)]),
    ]
    for name, kind, width, signed, fields, _ in nodes:
        g.add_node(name, kind, width, signed=signed, **fields)
    for name, *_, sources in nodes:
        for src, width in sources:
            g.add_edge(src, name, width)
    for name in ("c", "mn", "sl", "rm", "cu", "r"):
        g.add_node(f"o_{name}", "output", g.node(name).width)
        g.add_edge(name, f"o_{name}")
    return g


def _stimulus(cycles: int, seed: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    rows = [{"x": rng.randrange(-128, 128), "y": rng.randrange(256), "k": rng.randrange(-8, 8)}
            for _ in range(cycles)]
    rows[:4] = [{"x": -128, "y": 255, "k": 7}, {"x": 0, "y": 0, "k": -8},
                {"x": 127, "y": 1, "k": 0}, {"x": -1, "y": 3, "k": -1}]
    return rows


def test_propagate_constants_folds_new_kinds():
    """With every input fixed the whole graph folds to constants equal to the simulation."""
    g = _mixed_graph()
    for row in _stimulus(40, 1):
        folded = propagate_constants(g, row)
        assert {n.kind for n in folded} == {"const", "output"}
        assert simulate_graph(folded, [{}]) == simulate_graph(g, [row])
        r = reference("recip", g.node("r"), [read(row["y"] >> reference("lod", g.node("l"),
                                                                          [row["x"]]), 8, False)])
        assert folded.node("r").value == r


def test_propagate_constants_partial_keeps_tables():
    """Fixing only ``k`` keeps the rom (its table carried) and folds nothing it reads."""
    g = _mixed_graph()
    out = propagate_constants(g, {"k": -3})
    assert out.node("rm") == g.node("rm") and out.node("rm").table == g.node("rm").table
    assert out.node("r") == g.node("r") and out.node("c") == g.node("c")
    stim = [row | {"k": -3} for row in _stimulus(30, 2)]
    assert simulate_graph(out, stim) == simulate_graph(g, stim)
    split = split_fanout(g, 2)
    assert split.node("rm") == g.node("rm")
    assert simulate_graph(split, stim) == simulate_graph(g, stim)


@pytest.mark.parametrize("budget", [4.0, 4.5, 6.0])
def test_pipelined_mixed_graph_computes_the_same_later(budget):
    g = _mixed_graph()
    result = insert_pipeline(g, budget)
    piped = apply_pipeline(g, result)
    assert result.latency >= 1 and result.register_bits > 0
    assert piped.longest_path()[0] <= budget
    for node in g:
        assert piped.node(node.name) == node           # value and table carried
    stim = _stimulus(80, 3) + [{"x": 0, "y": 0, "k": 0}] * result.latency
    want, got = simulate_graph(g, stim), simulate_graph(piped, stim)
    lag = result.latency
    assert [got[t + lag] for t in range(80)] == want[:80]
    assert len({w["o_r"] for w in want}) > 5 and len({w["o_rm"] for w in want}) > 3


def test_pipelining_rejects_a_budget_below_recip():
    with pytest.raises(ValueError, match="node r has delay 4 > budget 3"):
        insert_pipeline(_mixed_graph(), 3.0)
