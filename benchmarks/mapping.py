"""Whole models mapped by :func:`mapping.mapper.map_model` onto the LEGO-style fused
architecture and the Gemmini-like baseline (equal PEs, memories, DRAM bandwidth and clock; the
same mapper, the same candidates and search), and onto a GPU roofline.

Per model of the mix (FLUX.1-dev one denoising step with SVDQuant W4A4 rank 32, Sana-1.6B
one step at 1024 px, Llama-3-8B + DuoAttention one 4k-token prefill chunk at 32k and one
decode step at 32k, VILA-U one image token): total cycles, energy and DRAM bytes on both, the
speedup and energy ratios (baseline over fused), per operator kind, and the mapper's wall time
on each. Then the geometric means over the mix, the mix again with a one-lane host (the
default host is a 16-lane vector unit, generous to the baseline, whose softmax, rescales and
sums run there: Gemmini's Rocket core is one lane), the mix mapped for least energy instead of
fewest cycles, FLUX.1 once more with the baseline at W8A8
(``--grouped int8``: the model Gemmini users would run instead), and the seed papers' ratios
computed by the framework: FLUX.1 weight memory, DuoAttention KV memory (GQA and MHA at 32k,
and the decode context at which weights + KV reach the paper's 2.55x / 1.67x), Sana's
attention growth from 1024 to 4096 px, and the SVDQuant layer's DRAM traffic with its low-rank
branch fused on chip against unfused (a separate pass through DRAM).

Progress lines on stderr, one JSON line on stdout. Run: ``.venv/bin/python
benchmarks/mapping.py [--quick]`` (``--quick``: the tiny twins only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

# This file's name shadows the ``mapping`` package for every script in its folder (Python puts
# the script's folder first on sys.path). Run as a script: drop the folder from the path.
# Imported as ``mapping`` by a sibling script: load the package and stand aside for it.
_HERE = Path(__file__).resolve().parent
_path = list(sys.path)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if __name__ == "mapping":
    del sys.modules["mapping"]
    import mapping as _package  # noqa: E402  (the package, now first on the path)

    sys.modules["mapping"] = _package
    sys.path[:] = _path

from hw.front.arch import load_arch  # noqa: E402
from mapping.host_cost import DEFAULT_HOST, Host  # noqa: E402
from mapping.mapper import map_model  # noqa: E402
from mapping.policy import Policy  # noqa: E402
from mapping.ratios import (  # noqa: E402
    duo_context_for_ratio,
    duo_kv_ratio,
    flux_weight_ratio,
    sana_attention_growth,
    svdquant_fusion_traffic,
)
from mapping.zoo import model  # noqa: E402

MIX = (("flux1-dev", {}), ("sana-1.6b", {}), ("llama3-8b-duo", {"phase": "prefill"}),
       ("llama3-8b-duo", {"phase": "decode"}), ("vila-u", {}))
GPU = "RTX4090-laptop"


def _label(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in options.items())


def _kinds(schedule) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for e in schedule.entries:
        k = out.setdefault(e.kind, {"cycles": 0, "energy_pj": 0.0})
        k["cycles"] += e.cycles * e.count
        k["energy_pj"] += e.energy_pj * e.count
    return out


def _compare(graph, fused, base, base_policy: Policy, host: Host = DEFAULT_HOST,
             objective: str = "cycles") -> dict:
    """Both architectures' totals, ratios and per-kind ratios of one graph."""
    row: dict = {}
    runs = {}
    for tag, arch, policy in (("fused", fused, Policy()), ("baseline", base, base_policy)):
        t0 = time.perf_counter()
        s = map_model(graph, arch=arch, policy=policy, host=host, objective=objective)
        row[f"{tag}_map_s"] = round(time.perf_counter() - t0, 2)
        t = s.totals
        row[tag] = {"cycles": t["cycles"], "energy_j": t["energy_pj"] * 1e-12,
                    "dram_bytes": t["dram_bytes"], "macs": t["macs"],
                    "time_by_target": {k: round(v / t["seconds"], 4)
                                       for k, v in t["by_target"].items()}}
        runs[tag] = _kinds(s)
    row["speedup"] = row["baseline"]["cycles"] / row["fused"]["cycles"]
    row["energy_ratio"] = row["baseline"]["energy_j"] / row["fused"]["energy_j"]
    row["by_kind"] = {
        k: {"fused_cycles": v["cycles"], "baseline_cycles": runs["baseline"][k]["cycles"],
            "speedup": runs["baseline"][k]["cycles"] / v["cycles"],
            "energy_ratio": runs["baseline"][k]["energy_pj"] / v["energy_pj"],
            "share_of_saved_cycles": (runs["baseline"][k]["cycles"] - v["cycles"])
            / max(1, row["baseline"]["cycles"] - row["fused"]["cycles"])}
        for k, v in runs["fused"].items()}
    return row


def _seeds() -> dict:
    flux = flux_weight_ratio()
    gqa, mha = duo_kv_ratio("llama3-8b-duo"), duo_kv_ratio("llama2-7b-duo")
    sana = sana_attention_growth()
    fusion = svdquant_fusion_traffic(load_arch("examples/arch/lego_fused.yaml"))
    return {"flux_weight_ratio": flux["ratio"],
            "duo_kv_ratio_gqa_32k": gqa["kv_ratio"], "duo_total_ratio_gqa_32k": gqa["total_ratio"],
            "duo_kv_ratio_mha_32k": mha["kv_ratio"], "duo_total_ratio_mha_32k": mha["total_ratio"],
            "sana_linear_growth": sana["linear_growth"], "sana_softmax_growth":
            sana["softmax_growth"], "sana_token_growth": sana["token_growth"],
            "duo_context_for_paper_ratio": {
                "mha_2.55x": duo_context_for_ratio("llama2-7b-duo", 2.55),
                "gqa_1.67x": duo_context_for_ratio("llama3-8b-duo", 1.67)},
            "svdquant_fused_vs_unfused_dram": fusion}


def _geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _variant(graphs: dict, fused, base, host: Host = DEFAULT_HOST,
             objective: str = "cycles") -> dict:
    """The mix again with another host or objective: ratios per model and geomeans."""
    rows = {label: _compare(g, fused, base, Policy(), host, objective)
            for label, g in graphs.items()}
    out = {label: {"speedup": r["speedup"], "energy_ratio": r["energy_ratio"]}
           for label, r in rows.items()}
    out["geomean_speedup"] = _geomean(r["speedup"] for r in rows.values())
    out["geomean_energy_ratio"] = _geomean(r["energy_ratio"] for r in rows.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the tiny twins of the mix only")
    args = ap.parse_args()
    fused = load_arch("examples/arch/lego_fused.yaml")
    base = load_arch("examples/arch/gemmini_like.yaml")
    out: dict = {"fused": fused.name, "baseline": base.name, "gpu": GPU,
                 "host": DEFAULT_HOST.to_dict(), "models": {}}
    graphs = {}
    for name, options in MIX:
        name = f"tiny-{name}" if args.quick else name
        graph = model(name, **options)
        label = _label(name, options)
        graphs[label] = graph
        row = _compare(graph, fused, base, Policy())
        t0 = time.perf_counter()
        row["gpu_seconds"] = map_model(graph, device=GPU).totals["seconds"]
        row["gpu_map_s"] = round(time.perf_counter() - t0, 2)
        out["models"][label] = row
        print(f"{label}: speedup {row['speedup']:.3f}x, energy {row['energy_ratio']:.3f}x "
              f"(mapped in {row['fused_map_s']} s / {row['baseline_map_s']} s)",
              file=sys.stderr, flush=True)
    rows = out["models"].values()
    out["geomean_speedup"] = _geomean(r["speedup"] for r in rows)
    out["geomean_energy_ratio"] = _geomean(r["energy_ratio"] for r in rows)
    flux = "tiny-flux1-dev" if args.quick else "flux1-dev"
    w8 = _compare(model(flux), fused, base, Policy(grouped="int8"))
    out["flux_baseline_w8a8"] = {k: w8[k] for k in ("speedup", "energy_ratio", "baseline")}
    print(f"geomean: speedup {out['geomean_speedup']:.3f}x, energy "
          f"{out['geomean_energy_ratio']:.3f}x; FLUX.1 vs a W8A8 baseline: "
          f"{w8['speedup']:.3f}x, {w8['energy_ratio']:.3f}x", file=sys.stderr, flush=True)
    out["scalar_host"] = _variant(graphs, fused, base, host=Host(lanes=1))
    out["energy_objective"] = _variant(graphs, fused, base, objective="energy")
    print(f"with a one-lane host: geomean speedup {out['scalar_host']['geomean_speedup']:.3f}x, "
          f"energy {out['scalar_host']['geomean_energy_ratio']:.3f}x; for least energy: "
          f"{out['energy_objective']['geomean_speedup']:.3f}x, "
          f"{out['energy_objective']['geomean_energy_ratio']:.3f}x", file=sys.stderr,
          flush=True)
    out["seeds"] = _seeds()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
