"""The sweep's area model (:mod:`hw.check.area_model` through :mod:`flows.sweep_area`) against
a whole-design Yosys measurement: per part, the gates the three-variant laws predict for the
declared architecture and the gates :func:`hw.check.accel_area.measure_parts` measures on it.

Run: ``.venv/bin/python benchmarks/area_model.py [ARCH.yaml] [--declared JSON]``
(``--declared``: a saved ``AccelParts.to_json()`` of the declared design instead of
measuring it again: 31 min of one core for lego_fused here). Prints the model's fit time
(cold: Yosys on the variants; cached: a later call), its estimate per part next to the
measurement, and one JSON line: ``{"arch", "fit_s", "estimate_us", "declared_s",
"gates_model", "gates_measured", "rel_error", "parts": {part: rel_error}, "area_mm2"}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from flows.sweep_area import area_model, area_outputs, family_variant
from hw.check.accel_area import AccelParts, measure_parts
from hw.check.area_model import VARIANTS
from hw.front.arch import load_arch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="?", default="examples/arch/lego_fused.yaml")
    ap.add_argument("--declared", default="", help="saved AccelParts JSON of the design")
    args = ap.parse_args()
    arch = load_arch(args.arch)
    t0 = time.perf_counter()
    model = area_model(family_variant(arch, *VARIANTS[0]))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(1000):
        area_outputs(arch)
    estimate_us = (time.perf_counter() - t0) * 1e3
    est = model.estimate(*arch.array, arch.units.lanes(),
                         {"scratchpad": arch.scratchpad.capacity_bytes * 8,
                          "accumulator": arch.accumulator.capacity_bytes * 8})
    t0 = time.perf_counter()
    if args.declared:
        measured = AccelParts.from_json(json.loads(Path(args.declared).read_text()))
    else:
        measured = measure_parts(arch)
    declared_s = time.perf_counter() - t0
    parts = {}
    print(f"{'part':24s} {'model':>10s} {'measured':>10s}  rel")
    for name in sorted(set(est.parts) | set(measured.parts)):
        got = est.parts.get(name, (0, 0, 0))[0]
        want = measured.parts[name].gates if name in measured.parts else 0
        if want:
            parts[name] = round(got / want - 1, 4)
        print(f"{name:24s} {got:10.0f} {want:10d}  {parts.get(name, float('nan')):+.3f}")
    print(f"{'total':24s} {est.gates:10d} {measured.gates:10d}  "
          f"{est.gates / measured.gates - 1:+.3f}")
    print(json.dumps({"arch": arch.name, "fit_s": round(fit_s, 1),
                      "estimate_us": round(estimate_us, 1), "declared_s": round(declared_s, 1),
                      "gates_model": est.gates, "gates_measured": measured.gates,
                      "rel_error": round(est.gates / measured.gates - 1, 4), "parts": parts,
                      "area_mm2": round(est.mm2, 4)}))


if __name__ == "__main__":
    main()
