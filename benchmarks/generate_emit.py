"""Generate + emit time of int8 output-stationary GEMM arrays: 8x8, 16x16, 32x32.

Each size is planned (reuse analysis, arborescences, memory system), elaborated in Amaranth
and emitted as Verilog, in a fresh process so no cache helps. Goal: 32x32 under 10 s.
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/generate_emit.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from hw.front.spec import spec_from_dict
from hw.front.plan import plan_array
from hw.rtl.generate import GeneratedArray
from hw.rtl.emit import to_verilog
t_import = time.perf_counter() - t0
n = int(sys.argv[1])
spec = spec_from_dict({"name": f"os{n}", "op": {"dims": {"i": n, "j": n, "k": 64}, "tensors": {
    "A": {"index": "i, k", "role": "input", "type": "int8"},
    "B": {"index": "k, j", "role": "input", "type": "int8"},
    "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
    "array": [n, n], "dataflow": {"space": ["i", "j"], "time": "i + j + k"}})
t0 = time.perf_counter(); plan = plan_array(spec); t_plan = time.perf_counter() - t0
t0 = time.perf_counter(); top = GeneratedArray([plan]); v = to_verilog(top, spec.name)
t_emit = time.perf_counter() - t0
print(json.dumps({"n": n, "plan_s": t_plan, "emit_s": t_emit, "lines": v.count("\n"),
                  "import_s": t_import}))
"""


def main() -> None:
    rows = []
    for n in (8, 16, 32):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(n)], capture_output=True,
                             text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r["total_s"] = r["plan_s"] + r["emit_s"]
        rows.append(r)
        print(f"{n:>2}x{n:<2}  plan {r['plan_s']:6.2f} s  elaborate+emit {r['emit_s']:6.2f} s  "
              f"total {r['total_s']:6.2f} s  ({r['lines']:,} lines of Verilog)", flush=True)
    print(json.dumps({f"gen_emit_{r['n']}x{r['n']}_s": round(r["total_s"], 2) for r in rows}
                     | {f"verilog_lines_{r['n']}x{r['n']}": r["lines"] for r in rows}))


if __name__ == "__main__":
    main()
