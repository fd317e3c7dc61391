"""Pipeline-register insertion: LP (hw.pipeline.insert_pipeline) against the ASAP baseline.

Synthetic primitive graphs shaped like a P x P systolic MAC array. Function unit (i, j) has an
8-bit operand register for A (forwarded east from FU (i, j-1), fed by input ``a_i`` at j = 0)
and one for B (forwarded south from FU (i-1, j), fed by ``b_j`` at i = 0), an 8x8 -> 16-bit
multiplier and a 32-bit adder; the adders are chained combinationally along each row
(``add(i,j) = add(i,j-1) + mul(i,j)``) into output ``y_i``, and a 1-bit control input is
broadcast to every adder. Budget: one multiplier or two adders per stage (1.0 units: mul 1.0,
add 0.5). Outputs aligned. Register bits are counted per edge (``sum width x count``, the
issue's objective) and, as an extra, with fan-out sharing.

Prints a table and ends with ONE JSON line. Run: ``.venv/bin/python benchmarks/pipeline_lp.py``
(``--sizes 8 16`` to choose sizes, ``--solver cbc`` for CBC).
"""

from __future__ import annotations

import argparse
import json
import time

from hw.ir.pipeline import asap_pipeline, insert_pipeline
from hw.ir.primitive import PrimitiveGraph

BUDGET = 1.0


def systolic_mac_graph(p: int) -> PrimitiveGraph:
    """The P x P array described in the module docstring."""
    g = PrimitiveGraph()
    g.add_node("ctrl", "input", 1)
    for i in range(p):
        g.add_node(f"a{i}", "input", 8)
        g.add_node(f"b{i}", "input", 8)
    for i in range(p):
        for j in range(p):
            fu = f"{i}_{j}"
            g.add_node(f"ra{fu}", "register", 8)
            g.add_node(f"rb{fu}", "register", 8)
            g.add_node(f"mul{fu}", "mul", 16)
            g.add_node(f"add{fu}", "add", 32)
            g.add_edge(f"ra{i}_{j - 1}" if j else f"a{i}", f"ra{fu}")
            g.add_edge(f"rb{i - 1}_{j}" if i else f"b{j}", f"rb{fu}")
            g.add_edge(f"ra{fu}", f"mul{fu}")
            g.add_edge(f"rb{fu}", f"mul{fu}")
            g.add_edge(f"mul{fu}", f"add{fu}")
            if j:
                g.add_edge(f"add{i}_{j - 1}", f"add{fu}")
            g.add_edge("ctrl", f"add{fu}")
        g.add_node(f"y{i}", "output", 32)
        g.add_edge(f"add{i}_{p - 1}", f"y{i}")
    return g


def run(p: int, solver: str) -> dict[str, float]:
    start = time.perf_counter()
    graph = systolic_mac_graph(p)
    graph_s = time.perf_counter() - start
    row: dict[str, float] = {"nodes": len(graph), "edges": len(graph.edges), "graph_s": graph_s}
    for share in (False, True):
        tag = "_shared" if share else ""
        asap = asap_pipeline(graph, BUDGET, share_fanout=share)
        start = time.perf_counter()
        lp = insert_pipeline(graph, BUDGET, solver=solver, share_fanout=share)
        total = time.perf_counter() - start
        row |= {f"reg_bits_asap{tag}": asap.register_bits, f"reg_bits_lp{tag}": lp.register_bits,
                f"reduction_pct{tag}": 100.0 * (1 - lp.register_bits / asap.register_bits),
                f"latency_asap{tag}": asap.latency, f"latency_lp{tag}": lp.latency,
                f"lp_build_s{tag}": lp.build_s, f"lp_solve_s{tag}": lp.solve_s,
                f"lp_total_s{tag}": total}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--solver", choices=["highs", "cbc"], default="highs")
    args = parser.parse_args()
    summary: dict[str, float | str] = {"solver": args.solver, "budget": BUDGET}
    print(f"{'array':>7} {'nodes':>6} {'edges':>6} {'ASAP bits':>10} {'LP bits':>9} "
          f"{'saved':>6} {'lat A/L':>7} {'build s':>8} {'solve s':>8} "
          f"{'shared A/L bits':>16}")
    for p in args.sizes:
        row = run(p, args.solver)
        size = f"{p}x{p}"
        print(f"{size:>7} {row['nodes']:>6} {row['edges']:>6} {row['reg_bits_asap']:>10} "
              f"{row['reg_bits_lp']:>9} {row['reduction_pct']:>5.1f}% "
              f"{row['latency_asap']:>3}/{row['latency_lp']:<3} {row['lp_build_s']:>8.3f} "
              f"{row['lp_solve_s']:>8.3f} "
              f"{row['reg_bits_asap_shared']:>8}/{row['reg_bits_lp_shared']:<7}")
        for key, value in row.items():
            summary[f"{key}_{size}"] = round(value, 4) if isinstance(value, float) else value
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
