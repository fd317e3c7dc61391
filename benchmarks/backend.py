"""Back end on generated arrays: LP pipelining vs ASAP, and the area of a fused array.

1. Each generated int8 GEMM array (64^3 problem) is lowered to its per-cycle primitive graph
   (hw.lower) and pipelined with a stage budget of one multiplier or two adders (1.0 unit):
   inserted register bits of the ASAP baseline ("naive") and of the LP, and the LP solve time.
2. Yosys generic synthesis (hw.area) of examples/gemm_fused.yaml (OS + WS + IS on one 4x4
   array) and of each of its dataflows alone: cells and flip-flops (a few minutes).
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/backend.py [--no-synth]``.
"""

from __future__ import annotations

import argparse
import json

from utilization import FLOWS, spec_for

from hw.area import synth_stats
from hw.lower import lower_datapath
from hw.pipeline import asap_pipeline, insert_pipeline
from hw.plan import plan_array

BUDGET = 1.0


def _synth_fused(figures: dict) -> None:
    from hw.spec import load_specs
    from sim.design import emit_design

    specs = load_specs("examples/gemm_fused.yaml")
    _, _, verilog = emit_design(specs)
    fused = synth_stats(verilog, specs[0].name)
    singles = []
    for spec in specs:
        _, _, v = emit_design(spec)
        st = synth_stats(v, spec.name)
        singles.append(st.cells)
        print(f"cells {spec.dataflow.name:<18} {st.cells:>7} ({st.flip_flops} flip-flops)")
    print(f"cells {'fused (OS+WS+IS)':<18} {fused.cells:>7} ({fused.flip_flops} flip-flops): "
          f"{fused.cells / max(singles):.2f}x the largest single, "
          f"{fused.cells / sum(singles):.2f}x their sum")
    figures |= {"cells_fused": fused.cells, "cells_single_max": max(singles),
                "cells_single_sum": sum(singles),
                "fused_over_single_max": round(fused.cells / max(singles), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-synth", action="store_true", help="skip the Yosys part")
    args = ap.parse_args()
    figures: dict = {}
    print(f"{'dataflow':<18} {'array':>5} {'nodes':>6} {'naive bits':>10} {'LP bits':>8} "
          f"{'saved':>6} {'solve s':>8}")
    for n in (8, 16, 32):
        for name in FLOWS:
            if n == 32 and name != "output_stationary":
                continue                  # 32x32 only for the solve-time figure
            graph = lower_datapath(plan_array(spec_for(name, 64, n)))
            naive = asap_pipeline(graph, BUDGET)
            lp = insert_pipeline(graph, BUDGET)
            saved = 1 - lp.register_bits / naive.register_bits if naive.register_bits else 0.0
            key = f"{name}_{n}x{n}"
            figures[f"reg_bits_naive_{key}"] = naive.register_bits
            figures[f"reg_bits_lp_{key}"] = lp.register_bits
            figures[f"lp_solve_s_{key}"] = round(lp.solve_s, 3)
            print(f"{name:<18} {n:>2}x{n:<2} {len(graph.nodes):>6} {naive.register_bits:>10} "
                  f"{lp.register_bits:>8} {saved:>6.1%} {lp.solve_s:>8.3f}", flush=True)
    os16 = "output_stationary_16x16"
    figures |= {
        "reg_bits_naive": figures[f"reg_bits_naive_{os16}"],
        "reg_bits_lp": figures[f"reg_bits_lp_{os16}"],
        "lp_solve_s": figures["lp_solve_s_output_stationary_32x32"],
        "cells_fused": None, "cells_single_max": None, "cells_single_sum": None,
    }
    if not args.no_synth:
        _synth_fused(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
