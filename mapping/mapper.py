"""The mapper: every operator of a :class:`~mapping.ir.ModelGraph` placed on one target, its
lowering chosen by search, costed, collected into a :class:`~mapping.schedule.Schedule`.

**Accelerator** (:func:`map_op`): the operator is first rewritten by the precision policy
(:func:`mapping.policy.deploy`), then every legal candidate is costed and the best under the
objective wins (:data:`OBJECTIVES`: fewest cycles by default, ties broken by less energy, then
by the candidates' order):

* ``whole/<dataflow>``: the operator as one kernel of the library on one dataflow of the
  architecture (:func:`mapping.accel_cost.cost_op`: GEMM, convolution, SVDQuant layer, fused
  attention, each with the kernel library's tilings searched), one candidate per dataflow, so
  the choice is never worse than any fixed dataflow under the objective;
* the decompositions of :mod:`mapping.decompose`: ``unfused_qb<N>`` (attention by query
  blocks of N tokens, N in :data:`QUERY_BLOCKS` up to the op's queries, at most
  :data:`MAX_QUERY_BLOCKS` blocks: pruning), ``unfused`` (linear attention),
  ``unfused_branch`` (an SVDQuant layer's branch in its own pass), ``k_split<p>`` (an
  SVDQuant layer in p parts along k, p up to :data:`MAX_K_PARTS`, tried in order until one
  costs more cycles than the one before: the cost falls while a part's block of rows grows,
  then rises with the host's sums), ``group_partials`` (int4 group codes without the
  dequantizer: the only candidate for those, a plain GEMM would drop the scales), ``im2col``
  (convolutions);
* ``host``: an operator without MACs (norms, element-wise ops, embeddings, KV-cache moves) on
  the host (:mod:`mapping.host_cost`), its only candidate; a depthwise convolution on the host
  as vector work (:func:`~mapping.host_cost.host_depthwise_cost`: an FMA a tap), beside its
  array candidates.

An operator no candidate runs is collected; the whole graph's are reported in one
:class:`~mapping.accel_cost.Unmappable` naming each and why.

**GPU** (:func:`map_model` with ``device``): each operator's roofline cost and Triton kernel
(:func:`mapping.gpu_cost.gpu_cost`) in its own formats (no policy: GPUs run bf16).

Deterministic; costs are memoized per operator shape (:mod:`mapping.accel_cost`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hw.front.arch import ArchSpec

from .accel_cost import EXACT_BELOW, OpCost, Unmappable, cost_op
from .decompose import (
    group_partials,
    im2col_conv,
    k_split,
    unfused_attention,
    unfused_branch,
    unfused_linear_attention,
)
from .energy import EnergyTable
from .gpu_cost import gpu_cost
from .host_cost import DEFAULT_HOST, Host, host_depthwise_cost, host_op_cost
from .ir import Attention, Conv2d, Linear, LinearAttention, ModelGraph, Op
from .policy import DEFAULT_POLICY, Policy, deploy, runs_grouped
from .schedule import Entry, Schedule

__all__ = ["MAX_K_PARTS", "MAX_QUERY_BLOCKS", "OBJECTIVES", "QUERY_BLOCKS", "Choice",
           "map_model", "map_op"]

OBJECTIVES = ("cycles", "energy", "edp")
"""What a choice minimizes: cycles (ties: energy), energy (ties: cycles) or the
energy-delay product (ties: cycles)."""

MAX_K_PARTS = 8
"""Most parts along k an SVDQuant layer is split into (``k_split<p>``, p = 2 ..)."""

QUERY_BLOCKS = (16, 64, 256, 1024)
"""Query tokens a block of an unfused attention tries (and the op's whole query count)."""

MAX_QUERY_BLOCKS = 64
"""Pruning: an unfused attention is not tried in more query blocks than this (a block count
past it costs each block's fixed overheads again for masked work it no longer saves)."""


@dataclass(frozen=True)
class Choice:
    """The winning candidate of one operator: its label, the steps it runs (one for a
    ``whole`` or ``host`` candidate), every candidate's cycles (or why it could not run), the
    operator as deployed and the policy's notes."""

    label: str
    steps: tuple[OpCost, ...]
    candidates: dict[str, int | str]
    deployed: Op
    notes: tuple[str, ...]

    @property
    def cycles(self) -> int:
        """Cycles of one execution: the steps' sum."""
        return sum(s.cycles for s in self.steps)

    @property
    def energy_pj(self) -> float:
        """pJ of one execution: the steps' sum."""
        return sum(s.energy_pj for s in self.steps)


def _candidates(arch: ArchSpec, op: Op, host: Host, table: EnergyTable | None,
                exact_below: int) -> list[tuple[str, object]]:
    """(label, thunk returning the steps) of every candidate of deployed ``op``."""
    out: list[tuple[str, object]] = []
    if not op.macs:
        return [("host", lambda: [host_op_cost(arch, op, host=host, table=table)])]
    if runs_grouped(op, arch):
        return [("group_partials", lambda: group_partials(arch, op, host=host, table=table))]
    for d in arch.dataflows:
        out.append((f"whole/{d.name}", lambda d=d.name: [cost_op(
            arch, op, exact_below=exact_below, dataflows=(d,), table=table)]))
    if isinstance(op, Attention):
        least = -(-op.q_tokens // MAX_QUERY_BLOCKS)
        for qb in sorted({b for b in QUERY_BLOCKS if least <= b < op.q_tokens} | {op.q_tokens}):
            out.append((f"unfused_qb{qb}", lambda qb=qb: unfused_attention(
                arch, op, qb, host=host, table=table)))
    elif isinstance(op, LinearAttention):
        out.append(("unfused", lambda: unfused_linear_attention(arch, op, host=host,
                                                                table=table)))
    elif isinstance(op, Linear) and op.weight_fmt.group and op.weight_fmt.kind != "float":
        if op.rank:
            out.append(("unfused_branch", lambda: unfused_branch(arch, op, host=host,
                                                                 table=table)))
        for p in range(2, min(MAX_K_PARTS, op.k // op.weight_fmt.group) + 1):
            out.append((f"k_split{p}", lambda p=p: k_split(arch, op, p, host=host,
                                                           table=table)))
    elif isinstance(op, Conv2d):
        out.append(("im2col", lambda: im2col_conv(arch, op, host=host, table=table)))
        if op.depthwise:
            out.append(("host", lambda: [host_depthwise_cost(arch, op, host=host,
                                                             table=table)]))
    return out


def _score(objective: str, cycles: int, energy: float) -> tuple:
    if objective == "cycles":
        return cycles, energy
    if objective == "energy":
        return energy, cycles
    return cycles * energy, cycles


def map_op(arch: ArchSpec, op: Op, *, policy: Policy = DEFAULT_POLICY,
           host: Host = DEFAULT_HOST, table: EnergyTable | None = None,
           exact_below: int = EXACT_BELOW, objective: str = "cycles") -> Choice:
    """The best candidate of ``op`` on ``arch`` under ``objective`` (module docstring);
    :class:`Unmappable` naming every candidate's reason when none runs."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    deployed, notes = deploy(op, arch, policy)
    tried: dict[str, int | str] = {}
    best: tuple[tuple, str, list[OpCost]] | None = None
    for n, (label, thunk) in enumerate(_candidates(arch, deployed, host, table, exact_below)):
        try:
            steps = thunk()
        except (Unmappable, ValueError) as exc:
            tried[label] = str(exc)
            continue
        cycles = sum(s.cycles for s in steps)
        tried[label] = cycles
        if label.startswith("k_split") and _rising(tried, label, cycles):
            break
        key = (*_score(objective, cycles, sum(s.energy_pj for s in steps)), n)
        if best is None or key < best[0]:
            best = (key, label, steps)
    if best is None:
        raise Unmappable(op, "; ".join(f"{k}: {v}" for k, v in tried.items()), arch.name)
    return Choice(best[1], tuple(best[2]), tried, deployed, notes)


def _rising(tried: dict[str, int | str], label: str, cycles: int) -> bool:
    """Whether the k split ``label`` costs more than the split into one part fewer."""
    before = tried.get(f"k_split{int(label[7:]) - 1}")
    return isinstance(before, int) and cycles > before


def _accel_entry(arch: ArchSpec, stage: str, count: int, op: Op, ch: Choice) -> Entry:
    steps = ch.steps
    targets = sorted({s.target for s in steps})
    main = max(steps, key=lambda s: s.cycles)
    accel = [s for s in steps if s.target == "accel"]
    if len(steps) == 1:
        sched = dict(steps[0].schedule)
    else:
        sched = {"lowering": ch.label, "parts": [
            {"name": s.op, "target": s.target, "dataflow": s.dataflow,
             "lowering": s.schedule.get("lowering", ""), "cycles": s.cycles,
             "dram_bytes": s.dram_bytes, "times": s.schedule.get("times", 1)} for s in steps]}
    cycles = ch.cycles
    notes = ch.notes + tuple(dict.fromkeys(n for s in steps for n in s.notes))
    return Entry(stage, op.name, op.kind, count, "+".join(targets), ch.label.split("/")[0],
                 accel[0].dataflow if accel else "", cycles / (arch.clock_mhz * 1e6), cycles,
                 op.macs, sum(s.dram_bytes for s in steps),
                 op.macs / (arch.pes * cycles) if cycles else 0.0, ch.energy_pj, main.bound,
                 all(s.exact for s in steps), sched, dict(ch.candidates), notes)


def _gpu_entry(device: str, stage: str, count: int, op: Op) -> Entry:
    c = gpu_cost(op, device)
    return Entry(stage, op.name, op.kind, count, "gpu", c.kernel, c.precision, c.time_s, None,
                 op.macs, c.bytes, c.utilization, None, c.bound, False,
                 {"kernel": c.kernel, "precision": c.precision, "compute_s": c.compute_s,
                  "memory_s": c.memory_s}, {}, c.notes)


def map_model(graph: ModelGraph, *, arch: ArchSpec | None = None, device: str | None = None,
              policy: Policy = DEFAULT_POLICY, host: Host = DEFAULT_HOST,
              table: EnergyTable | None = None, exact_below: int = EXACT_BELOW,
              objective: str = "cycles") -> Schedule:
    """``graph`` mapped onto ``arch`` (an accelerator) or ``device`` (a GPU name of
    :data:`sw.roofline.DEVICES`): exactly one of them. :class:`Unmappable` listing every
    operator the accelerator cannot run."""
    if (arch is None) == (device is None):
        raise ValueError("give exactly one target: arch (an accelerator) or device (a GPU)")
    start = time.perf_counter()
    entries, failed = [], []
    for stage, op in graph.walk():
        if arch is None:
            entries.append(_gpu_entry(device, stage.name, stage.repeat, op))
            continue
        try:
            ch = map_op(arch, op, policy=policy, host=host, table=table,
                        exact_below=exact_below, objective=objective)
        except Unmappable as exc:
            failed.append(f"{stage.name}.{op.name} ({exc.reason})")
            continue
        entries.append(_accel_entry(arch, stage.name, stage.repeat, op, ch))
    if failed:
        raise Unmappable(graph.name, f"{len(failed)} operator(s) cannot run: "
                                     + "; ".join(failed), arch.name)
    return _schedule(graph, arch, device, tuple(entries), policy, host, objective,
                     time.perf_counter() - start)


def _schedule(graph: ModelGraph, arch: ArchSpec | None, device: str | None,
              entries: tuple[Entry, ...], policy: Policy, host: Host, objective: str,
              spent: float) -> Schedule:
    config = {"graph": dict(graph.config)} if hasattr(graph, "config") else {}
    if arch is not None:
        hz = arch.clock_mhz * 1e6
        config.update(policy=policy.to_dict(), host=host.to_dict(), objective=objective)
        return Schedule(graph.name, "accel", arch.name, None, hz, arch.pes * hz,
                        arch.dram.bytes_per_cycle * hz, entries, config, spent)
    from sw.roofline import DEVICES
    dev = DEVICES[device]
    return Schedule(graph.name, "gpu", None, device, None, max(dev.peaks.values()) / 2,
                    dev.bandwidth, entries, config, spent)
