"""The JSON report of a generated design, and its cross-check against the emitted netlist.

Layer: hw.check, the checks of emitted designs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from ..cost import design_cost
from ..rtl.generate import GeneratedArray
from .netlist import read_netlist

__all__ = ["ReportMismatch", "check_against_netlist", "design_report"]


class ReportMismatch(AssertionError):
    """The emitted Verilog disagrees with what the generator says it built."""


def design_report(top: GeneratedArray) -> dict:
    """Figures of ``top`` (elaborate it first, e.g. by emitting it): structure and timing.

    Cycles, MACs and utilization come from :func:`hw.cost.design_cost` (each mode from its own
    op); register bits are the ones ``top`` counted while elaborating."""
    if not top.register_bits:
        raise ValueError("design_report needs an elaborated design: emit it first")
    plan = top.plan
    spec, op = plan.spec, plan.spec.op
    cost = design_cost(top.plans, top.backend, datapath=None if top.datapath is None
                       else (top.lowered, top.datapath))
    first = cost.mode(0)
    banks = []
    for b, bank in enumerate(plan.banks):
        dtype = next(t for t in op.tensors if t.name == bank.tensor).dtype
        banks.append({"index": top.bank_of[0][b], "tensor": bank.tensor,
                      "depth": top.banks[top.bank_of[0][b]][1], "width": dtype.bits,
                      "roots": [list(plan.streams[k].root) for k in bank.members]})
    per_tensor = Counter(b["tensor"] for b in banks)
    roots = Counter(s.tensor for s in plan.streams)
    tensors = {}
    for tree in plan.inputs:
        tensors[tree.tensor.name] = {
            "role": "input",
            "reuse": sorted({v.kind for v in tree.vectors}) or ["none"],
            "memory_roots": roots[tree.tensor.name],
            "banks": per_tensor[tree.tensor.name],
            "forwarding_edges": sum(1 for p, _ in tree.parent.values() if p is not None),
        }
    out = plan.output
    tensors[out.tensor.name] = {
        "role": "accumulate",
        "reuse": [out.vector.kind] if out.vector else ["none"],
        "writer_roots": roots[out.tensor.name],
        "banks": per_tensor[out.tensor.name],
        "read_modify_write": plan.accumulates_across_tiles,
    }
    report = {
        "name": spec.name,
        "dataflow": spec.dataflow.name,
        "array": list(spec.array),
        "fus": {"array": cost.fus, "used": len(plan.fus)},
        "registers": {"by_purpose": dict(sorted(top.register_bits.items())),
                      "total_bits": sum(top.register_bits.values())},
        "banks": {"count": len(banks), "per_tensor": dict(sorted(per_tensor.items())),
                  "total_bits": cost.memory_bits, "list": banks},
        "tensors": tensors,
        "problem": dict(zip(op.dims, op.extents, strict=True)),
        "tile": dict(zip(op.dims, plan.tile, strict=True)),
        "padded": dict(zip(op.dims, plan.padded, strict=True)),
        "cycles": {"per_tile": first.cycles_per_tile, "tile_latency": first.tile_latency,
                   "tiles": first.tiles, "per_problem": first.cycles,
                   "datapath_latency": first.datapath_latency,
                   "accumulator_read": first.accumulator_read},
        "macs": first.macs,
        "utilization": round(first.utilization, 4),
        "host": {"addr_bits": top.addr_bits, "data_bits": top.host.data_bits,
                 "word_bits": top.host.word_bits},
    }
    if len(top.plans) > 1:      # fused: every dataflow's timing, the physical banks
        report["modes"] = [{"mode": m.mode, "dataflow": m.dataflow,
                            "cycles_per_problem": m.cycles, "cycles_per_tile": m.cycles_per_tile,
                            "macs": m.macs, "utilization": round(m.utilization, 4)}
                           for m in cost.modes]
        names = [t.name for t in (plan.inputs[0].tensor, plan.inputs[1].tensor,
                                  plan.output.tensor)]
        report["banks"] = {
            "count": len(cost.banks),
            "total_bits": cost.memory_bits,
            "list": [{"index": b, "tensor": names[r], "depth": d, "width": w}
                     for b, (r, d, w) in enumerate(cost.banks)],
        }
    if top.datapath is not None:    # emitted from the back end's graph: what each pass did
        report["backend"] = {"options": asdict(top.backend), "passes": top.datapath.stats}
    return report


def check_against_netlist(report: dict, verilog: str) -> dict:
    """Parse ``verilog`` (pyverilog) and require its registers and memories to match ``report``.

    Returns the netlist figures; raises :class:`ReportMismatch` naming the difference.
    """
    net = read_netlist(verilog, report["name"])
    reg_bits = net.total_register_bits
    if reg_bits != report["registers"]["total_bits"]:
        raise ReportMismatch(f"netlist has {reg_bits} register bits, the report says "
                             f"{report['registers']['total_bits']}")
    mems = sorted(net.memories.values())
    expect = sorted((b["width"], b["depth"]) for b in report["banks"]["list"])
    if mems != expect:
        raise ReportMismatch(f"netlist memories (width, depth) {mems} differ from the "
                             f"report's banks {expect}")
    ports = {p.name: (p.direction, p.width) for p in net.ports.values()}
    return {"register_bits": reg_bits, "memories": len(mems), "ports": ports}
