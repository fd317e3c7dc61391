"""Back end on generated arrays: LP pipelining vs ASAP, solve time, and the area of fusion.

1. Each int8 GEMM array (64^3 problem; single dataflows and the fused OS + WS + IS array) is
   lowered to its per-cycle primitive graph (hw.lower), constant control folded (hw.passes),
   and pipelined with a stage budget (hw.pipeline): inserted register bits of the ASAP
   baseline ("naive") and of the LP, the LP solve time, the longest combinational path before
   and after. Budget: 1.0 (one multiplier or two adders) for single dataflows; 1.5 for fused
   arrays, whose accumulator loop also holds the mode mux (1.25 is feasible but must cut the
   partial-sum chains, which skews the whole array). For the fused 16x16 array it also prints
   where the inserted bits go, by edge class, for both.
2. Yosys generic synthesis (hw.area) of examples/gemm_fused.yaml (OS + WS + IS on one 4x4
   array) and of each of its dataflows alone, from the direct generator and from the back
   end's graph: cells and flip-flops (several minutes).
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/backend.py [--no-synth]``.
"""

from __future__ import annotations

import argparse
import json

from utilization import spec_for

from hw.front.fusion import plan_fused
from hw.front.plan import plan_array
from hw.ir.backend import BackendOptions, optimize_datapath
from hw.ir.lower import lower_array
from hw.ir.pipeline import asap_pipeline, insert_pipeline

SINGLE_BUDGET, FUSED_BUDGET = 1.0, 1.5
FUSED = ("output_stationary", "weight_stationary", "input_stationary")


def _synth_fused(figures: dict) -> None:
    """Cells of the fused 4x4 array and of each dataflow alone, both generators: the datapath
    emitted from the back end's graph (no pipelining: constants folded, balanced write-back
    select; the headline figures) and the direct one (``_direct``: the FU as a module)."""
    from hw.check.area import synth_stats
    from hw.front.spec import load_specs
    from hw.rtl.emit import emit_design

    specs = load_specs("examples/gemm_fused.yaml")
    for label, backend in (("", BackendOptions()), ("_direct", None)):
        _, _, verilog = emit_design(specs, backend=backend)
        fused = synth_stats(verilog, specs[0].name)
        singles = []
        for spec in specs:
            _, _, v = emit_design([spec], backend=backend)
            st = synth_stats(v, spec.name)
            singles.append(st.cells)
            print(f"cells{label:<8} {spec.dataflow.name:<18} {st.cells:>7} "
                  f"({st.flip_flops} flip-flops)", flush=True)
        print(f"cells{label:<8} {'fused (OS+WS+IS)':<18} {fused.cells:>7} "
              f"({fused.flip_flops} flip-flops): {fused.cells / max(singles):.3f}x the largest "
              f"single, {fused.cells / sum(singles):.2f}x their sum", flush=True)
        figures |= {f"cells_fused{label}": fused.cells,
                    f"cells_single_max{label}": max(singles),
                    f"cells_single_sum{label}": sum(singles),
                    f"fused_over_single_max{label}": round(fused.cells / max(singles), 3)}


def _where_bits_go(graph, results) -> None:
    """Inserted bits per (source kind -> destination kind) edge class, side by side."""
    rows: dict[tuple[str, str], list[int]] = {}
    for col, res in enumerate(results):
        for e in graph.edges:
            k = res.registers_per_edge.get((e.src, e.dst), 0)
            if k:
                key = (graph.nodes[e.src].kind, graph.nodes[e.dst].kind)
                rows.setdefault(key, [0] * len(results))[col] += k * e.width
    print(f"  where the bits go (fused 16x16): {'edge class':<22} {'ASAP':>7} {'LP':>7}")
    for (src, dst), bits in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        print(f"  {'':<32} {src + ' -> ' + dst:<22} {bits[0]:>7} {bits[1]:>7}")


def _pipeline(key: str, plans, budget: float, figures: dict) -> None:
    graph = optimize_datapath(lower_array(plans), BackendOptions()).graph   # constants folded
    naive = asap_pipeline(graph, budget)
    lp = insert_pipeline(graph, budget)
    if key == "fused_16x16":
        _where_bits_go(graph, (naive, lp))
    saved = 1 - lp.register_bits / naive.register_bits if naive.register_bits else 0.0
    figures[f"reg_bits_naive_{key}"] = naive.register_bits
    figures[f"reg_bits_lp_{key}"] = lp.register_bits
    figures[f"lp_solve_s_{key}"] = round(lp.solve_s, 3)
    figures[f"longest_path_{key}"] = graph.longest_path()[0]
    print(f"{key:<26} {len(graph.nodes):>6} {graph.longest_path()[0]:>6.2f} {budget:>6.2f} "
          f"{naive.register_bits:>10} {lp.register_bits:>8} {saved:>6.1%} {lp.latency:>4} "
          f"{lp.solve_s:>8.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-synth", action="store_true", help="skip the Yosys part")
    args = ap.parse_args()
    figures: dict = {}
    print(f"{'design':<26} {'nodes':>6} {'path':>6} {'budget':>6} {'naive bits':>10} "
          f"{'LP bits':>8} {'saved':>6} {'lat':>4} {'solve s':>8}")
    for n in (8, 16):
        for name in (*FUSED, "multicast"):
            _pipeline(f"{name}_{n}x{n}", plan_array(spec_for(name, 64, n)), SINGLE_BUDGET,
                      figures)
    for n in (8, 16, 32):
        plans = plan_fused([spec_for(name, 64, n) for name in FUSED])
        _pipeline(f"fused_{n}x{n}", plans, FUSED_BUDGET, figures)
    figures |= {
        "reg_bits_naive": figures["reg_bits_naive_fused_16x16"],
        "reg_bits_lp": figures["reg_bits_lp_fused_16x16"],
        "lp_saving_fused_16x16": round(1 - figures["reg_bits_lp_fused_16x16"]
                                       / figures["reg_bits_naive_fused_16x16"], 3),
        "lp_solve_s": figures["lp_solve_s_fused_32x32"],
        "cells_fused": None, "cells_single_max": None, "cells_single_sum": None,
    }
    if not args.no_synth:
        _synth_fused(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
