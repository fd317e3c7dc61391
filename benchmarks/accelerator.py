"""The generated accelerators of the two shipped architectures on the layers of the seeds:
RTL-measured cycles (fast Verilator engine), the cycle model's, the roofline bound, PE
utilization, DRAM bytes, and the fused / gemmini-like speedup; the time to generate and emit
a 16x16 accelerator with a 256 KiB scratchpad; the fast engine's throughput.

Per layer and architecture the program is the one with the fewest model cycles among every
dataflow's default program (the kernel library's choice); when the best of those is more
than ``SEARCH_ABOVE`` times its roofline bound and short, also among every candidate schedule
of the kernel library at every prefetch distance 1-6, as a mapper would search them
(``"schedule"`` says which won). Every RTL run is checked bit-exact: the RTL's final
DRAM equals the reference machine's, whose output equals golden's. ``roofline`` =
max(padded MACs / PEs, DRAM bytes / bytes per cycle) of the program that ran. A layer whose
RTL run would take longer than ``--rtl-budget`` seconds (estimated from the model's cycles
at the measured throughput) is reported with model cycles only, and a smaller layer of the
same shape family runs in RTL instead (FLUX.1's qkv at K = 512).

Last line: one JSON object. Run: ``.venv/bin/python benchmarks/accelerator.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from flows.accel_engines import accelerator_source, run_program
from golden.int_gemm import int_gemm
from hw.front import kernel_runs
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import load_arch
from hw.front.kernel_choice import schedule_candidates
from hw.front.kernel_runs import gemm_operands
from hw.front.kernel_schedule import GemmProblem
from hw.front.kernels import gemm_program
from hw.front.program_cost import program_cost
from hw.front.spec_model import SpecError

ARCHS = ("gemmini_like", "lego_fused")
#: name: (M, N, K, A stored transposed, B stored transposed)
LAYERS = {
    "gemm_256": (256, 256, 256, False, False),
    "flux_qkv": (1024, 3072, 3072, False, False),
    "flux_qkv_k512": (1024, 3072, 512, False, False),
    "sana_ktv": (32, 32, 1024, True, False),         # K^T V: K (tokens x 32) read as A^T
    "sana_q_kv": (1024, 32, 32, False, False),
    "llama_decode_proj": (1, 4096, 4096, False, False),
    "decode_qkt": (1, 8192, 128, False, True),      # q K^T: K (8192 x 128) read as B^T
}
QUICK = ("gemm_256", "sana_ktv", "sana_q_kv", "decode_qkt")


#: a layer whose best default program is this far above its roofline bound, and at most
#: ``SEARCH_INSTRUCTIONS`` long, also gets a schedule search
SEARCH_ABOVE = 1.05
SEARCH_INSTRUCTIONS = 5_000


def _schedules(arch, flow: str, ops) -> list:
    """The kernel library's candidate schedules of ``ops`` under ``flow``, each also with
    every prefetch distance from 1 to 6 (what a mapper would enumerate)."""
    out = []
    for s in schedule_candidates(arch, flow, GemmProblem(ops.extents())):
        out += [replace(s, prefetch=p) for p in range(1, 7)]
    return list(dict.fromkeys(out))


def best_program(arch, ops) -> tuple[str, list, int, object]:
    """(dataflow, program, model cycles, schedule: None for the default) with the fewest
    model cycles: every
    dataflow's default program; if the best is more than ``SEARCH_ABOVE`` its roofline bound
    and short, every candidate schedule of every dataflow as well."""
    params = accel_params(arch)
    best = min(((d.name, program, accel_timing(program, params).cycles, None)
                for d in arch.dataflows for program in [gemm_program(arch, d.name, ops)]),
               key=lambda b: b[2])
    bound = program_cost(best[1], arch).roofline_cycles
    if best[2] <= SEARCH_ABOVE * bound or len(best[1]) > SEARCH_INSTRUCTIONS:
        return best
    for d in arch.dataflows:
        for s in _schedules(arch, d.name, ops):
            try:
                program = gemm_program(arch, d.name, ops, s)
            except SpecError:
                continue                # a prefetch distance the memories do not hold
            cycles = accel_timing(program, params).cycles
            if cycles < best[2]:
                best = (d.name, program, cycles, s)
    return best


def run_layer(arch, name: str, rtl: bool, seed: int = 0) -> dict:
    m, n, k, a_t, b_t = LAYERS[name]
    ops = gemm_operands(arch, m, n, k, a_t, b_t)
    t0 = time.perf_counter()
    flow, program, model, schedule = best_program(arch, ops)
    choose_s = time.perf_counter() - t0
    cost = program_cost(program, arch)
    row = {"layer": name, "shape": [m, n, k], "arch": arch.name, "dataflow": flow,
           "schedule": "default" if schedule is None else "searched",
           "instructions": len(program), "model_cycles": model,
           "roofline_cycles": cost.roofline_cycles, "dram_bytes": cost.dram_bytes,
           "model_utilization": round(cost.macs / (arch.pes * model), 4),
           "model_over_roofline": round(model / cost.roofline_cycles, 4),
           "choose_s": round(choose_s, 2)}
    if not rtl:
        return row
    rng = np.random.default_rng(seed)
    t = arch.types[0]
    a = rng.integers(t.min, t.max + 1, (m, k))
    b = rng.integers(t.min, t.max + 1, (k, n))
    ref = kernel_runs.run_gemm(arch, flow, ops, a, b, program=program)
    exact = bool(np.array_equal(ref.output, int_gemm(a, b, t, t, arch.types[2].bits)))
    run = run_program(arch, ref.program, ref.dram_in, engine="fast", expected_cycles=model)
    row.update(cycles=run.cycles, bit_exact=exact and run.dram == ref.machine.dram.tobytes(),
               utilization=round(cost.macs / (arch.pes * run.cycles), 4),
               cycles_per_s=round(run.cycles_per_s))
    return row


def emit_time(arch) -> float:
    from hw.rtl.accel import accelerator_verilog

    t0 = time.perf_counter()
    accelerator_verilog(arch)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--rtl-budget", type=float, default=120.0, metavar="S",
                    help="largest estimated RTL run, seconds (default 120)")
    args = ap.parse_args()
    archs = {n: load_arch(f"examples/arch/{n}.yaml") for n in ARCHS}
    result = {"emit_s": {n: round(emit_time(a), 1) for n, a in archs.items()}}
    for a in archs.values():
        accelerator_source(a)           # cache the Verilog for the runs
    rows, rate = [], 1e6
    for name in QUICK if args.quick else LAYERS:
        for arch in archs.values():
            model_only = run_layer(arch, name, rtl=False)
            rtl = model_only["model_cycles"] / rate <= args.rtl_budget
            row = run_layer(arch, name, rtl=True) if rtl else model_only
            rate = row.get("cycles_per_s", rate) or rate
            rows.append(row)
            print(json.dumps(row), flush=True)
    by = {(r["layer"], r["arch"]): r for r in rows}
    speedup = {}
    for name in dict.fromkeys(r["layer"] for r in rows):
        g, f = by[(name, "gemmini_like")], by[(name, "lego_fused")]
        key = "cycles" if "cycles" in g and "cycles" in f else "model_cycles"
        speedup[name] = round(g[key] / f[key], 3)
    result.update(layers=rows, fused_speedup=speedup,
                  fast_cycles_per_s=max(r.get("cycles_per_s", 0) for r in rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
