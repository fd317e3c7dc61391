"""emit_graph for the kinds max, min, clamp, shl_var, shr_var, lod, rom, recip: the Amaranth form
agrees with simulate_graph cycle by cycle, exhaustively over every pair of 4-bit inputs (read
signed and unsigned, whole and sliced, plus 8-bit shift amounts that need the cap)."""

import itertools

from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, Signal

from hw.ir.graph_sim import simulate_graph
from hw.ir.primitive import PrimitiveGraph
from hw.rtl.graph_rtl import emit_graph
from tests.hw.rtl.graph_runner import run_graph_rtl

KINDS = ("max", "min", "clamp", "shl_var", "shr_var", "lod", "rom", "recip")


def _graph() -> PrimitiveGraph:
    """Inputs ``x``, ``y`` (4 bits, unsigned); ``xs``, ``ys`` read them signed (bufs);
    ``pu``/``ps``: 8-bit products, as wide shift amounts (0..225 and -56..64); every new kind
    on several operand choices and node widths; a register behind a recip."""
    g = PrimitiveGraph()
    g.add_node("x", "input", 4)
    g.add_node("y", "input", 4)
    for name in ("x", "y"):
        g.add_node(f"{name}s", "buf", 4, signed=True)
        g.add_edge(name, f"{name}s")
    g.add_node("pu", "mul", 8)
    g.add_node("ps", "mul", 8, signed=True)
    for src, dst in [("x", "pu"), ("y", "pu"), ("xs", "ps"), ("ys", "ps")]:
        g.add_edge(src, dst)
    a_ops = [("x", 4), ("xs", 4), ("x", 3), ("xs", 2)]          # (source, edge width)
    b_ops = [("y", 4), ("ys", 4), ("ys", 3), ("y", 1)]
    count = 0

    def op(kind, width, sources, *, signed=False, value=0, table=()):
        nonlocal count
        name = f"{kind}{count}"
        count += 1
        g.add_node(name, kind, width, signed=signed, value=value, table=table)
        for src, w in sources:
            g.add_edge(src, name, w)
        g.add_node(f"o_{name}", "output", width)
        g.add_edge(name, f"o_{name}")
        return name

    for a, b in itertools.product(a_ops, b_ops):
        for kind in ("max", "min"):
            op(kind, 3, [a, b])
            op(kind, 6, [a, b], signed=True)
        for width in (3, 8, 20):
            op("shl_var", width, [a, b], signed=width == 8)
        for width in (2, 6):
            op("shr_var", width, [a, b], signed=width == 6)
    for a in a_ops + [("pu", 8), ("ps", 8), ("ps", 5)]:
        for width, sgn, v in [(4, True, 1), (4, True, 3), (6, True, 4), (3, False, 2),
                              (5, False, 5), (2, False, 1)]:
            op("clamp", width, [a], signed=sgn, value=v)
        for width in (1, 2, 4):
            op("lod", width, [a])
        for width, v in [(6, 0), (6, 3), (6, 5), (4, 5), (13, 12), (3, 62)]:
            op("recip", width, [a], value=v)
        for table, width in [((5,), 3), ((1, -2, 3), 4), ((7, 0, -8, 3, 1), 4),
                             (tuple(range(-8, 8)), 4), (tuple(range(20)), 6)]:
            op("rom", width, [a], table=table, signed=len(table) == 3)
    for a in a_ops[:2]:                         # wide shift amounts: the cap is exercised
        for b in [("pu", 8), ("ps", 8), ("ps", 6)]:
            for width in (3, 9):
                op("shl_var", width, [a, b], signed=True)
                op("shr_var", width, [a, b], signed=a[0] == "xs")
    g.add_node("rr", "register", 6, value=5)            # sequential: one cycle behind
    first_recip = next(n.name for n in g if n.kind == "recip")
    g.add_edge(first_recip, "rr")
    g.add_node("o_rr", "output", 6)
    g.add_edge("rr", "o_rr")
    return g




def test_every_new_kind_agrees_exhaustively():
    g = _graph()
    assert {n.kind for n in g} >= set(KINDS)
    stimulus = [{"x": x, "y": y} for x, y in itertools.product(range(16), repeat=2)]
    want = simulate_graph(g, stimulus)
    got = run_graph_rtl(g, stimulus)
    for t, (w, o) in enumerate(zip(want, got, strict=True)):
        bad = {n: (w[n], o[n]) for n in w if w[n] != o[n]}
        assert not bad, f"cycle {t} {stimulus[t]}: (python, rtl) {dict(list(bad.items())[:6])}"
    # not vacuous: every kind's outputs take several values over the sweep
    for kind in KINDS:
        values = {w[f"o_{n.name}"] for n in g if n.kind == kind for w in want}
        assert len(values) > 3, kind


def test_converts_to_rtlil():
    """Yosys-facing back end: the Array, the divider and the variable shifts elaborate."""
    g = _graph()
    m = Module()
    m.domains.sync = ClockDomain("sync", reset_less=True)
    x, y = Signal(4, name="x"), Signal(4, name="y")
    outs = emit_graph(m, g, {"x": x, "y": y})
    ports = [x, y]
    for kind in KINDS:                  # the first two nodes of each kind, and the register
        names = [f"o_{n.name}" for n in g if n.kind == kind][:2] + ["o_rr"] * (kind == "recip")
        for name in names:
            sig = Signal(len(outs[name]), name=f"out_{name}")
            m.d.comb += sig.eq(outs[name])
            ports.append(sig)
    text = rtlil.convert(m, ports=ports)
    assert "$div" in text and ("$shl" in text or "$sshl" in text) and "$sshr" in text
