"""The e2e run's operators left in torch, costed on the accelerator's host
(:func:`host_records`, for :func:`flows.e2e.run_e2e`).

The run (:mod:`flows.e2e`) puts some module calls on the accelerator (a record each,
:class:`flows.e2e.OpRecord`) and runs everything else in torch float32. This module states
what that everything else would cost on the host beside the array, as the mapper costs it:

* **Operators.** The same prepared twin (float32, on the run's inputs) imported with the fx
  importer (:func:`mapping.fx_import.import_items`: the :class:`~mapping.ir.ModelGraph`'s
  operators before stage folding, one item per traced call, each with the module path that
  ran it), so every operator is one execution of the run (a layer run twice: two).
* **The rule** (:func:`placed_ops`): an operator is the accelerator's iff the module at its
  item's path is one the run routes to the accelerator on ``arch``
  (:func:`runs_on_accelerator`: every ``nn.Linear`` and pointwise ``nn.Conv2d``
  (:func:`flows.e2e_conv.is_pointwise`); ``ReLULinearAttention`` with the
  linear-attention units; decoding ``DuoAttention`` with the attention units;
  ``SVDQuantLinear`` with requant and a dequantizer of its group) **and** it has MACs (the
  contraction that the accelerator call runs). Everything else is the host's: every
  operator of a module or function call the run leaves in torch, and the MAC-free
  operators of a routed leaf (an SVDQuant leaf's activation ``quantize``, DuoAttention's
  cache writes), which the mapper places on the host too. Nothing is matched by name.
  Checked (:func:`check_coverage`, ``ValueError`` naming the difference): the accelerator's
  operators' ``(path, call)`` pairs are exactly the records' (``<path>#<call>...``), so an
  accelerator call is never costed on the host and a host operator never hides one.
* **Cost** (:func:`host_record`): a MAC-free operator is the mapper's ``host`` candidate,
  :func:`mapping.host_cost.host_op_cost` (default :data:`~mapping.host_cost.DEFAULT_HOST`,
  16 FP32 lanes on the DRAM port; the default energy table): cycles, pJ, DRAM bytes, bound;
  the policy leaves MAC-free operators as they are, so this equals
  :func:`mapping.mapper.map_op`'s cost of the operator. A depthwise convolution (Sana's
  Mix-FFN 3x3) is the mapper's ``host`` candidate for it,
  :func:`mapping.host_cost.host_depthwise_cost` (an FMA a tap), on the operator as imported
  (float32: the bytes torch moves; the mapper costs its int8 deployment's). Pointwise (1x1)
  convolutions run on the accelerator (:mod:`flows.e2e_conv`). An operator without a host
  cost function (a contraction left in torch: a ``W4A16Linear``, another convolution, softmax
  or linear attention without their units, an SVDQuant linear without its units) gets
  ``cycles`` None
  and a note saying so; it is listed, never guessed.

Leaves whose IR states no operator (``Timesteps``: the zoo graphs start at the embedder's
first linear) get no record. Records are named ``<path>#<call>`` (``.<op>`` appended for a
function call's operator or a multi-operator leaf's), ``<call>`` counting the operator
emitting calls of that path from 1 (as the run numbers its accelerator calls); the root's
own calls are under ``(root)``.

Layer: flows.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hw.front.arch import ArchSpec
from mapping.energy import EnergyTable
from mapping.host_cost import DEFAULT_HOST, Host, host_depthwise_cost, host_op_cost
from mapping.ir import Conv2d, Op
from mapping.vector_work import vector_work

if TYPE_CHECKING:
    from .e2e import E2ERun, OpRecord

__all__ = ["ROOT", "HostCosted", "HostRecord", "PlacedOp", "check_coverage", "host_kinds_table",
           "host_record", "host_records", "host_summary", "placed_ops", "runs_on_accelerator",
           "uncosted_kinds"]

ROOT = "(root)"
"""The path shown for the model's own calls."""


def runs_on_accelerator(module: Any, arch: ArchSpec) -> bool:
    """Whether the e2e run puts ``module``'s calls on ``arch``'s accelerator (module
    docstring; the same tests :func:`flows.e2e._run` dispatches on)."""
    import torch

    from mapping.torch_attention import DuoAttention, ReLULinearAttention
    from mapping.torch_blocks import SVDQuantLinear

    from .e2e_conv import is_pointwise
    from .e2e_duo import on_accelerator
    from .e2e_softmax import softmax_on_accelerator
    from .e2e_svdquant import svdquant_on_accelerator
    from .e2e_units import has_linear_attention
    from .e2e_w4a16 import w4a16_on_accelerator

    return (isinstance(module, torch.nn.Linear) or is_pointwise(module)
            or w4a16_on_accelerator(module, arch)
            or (isinstance(module, ReLULinearAttention) and has_linear_attention(arch))
            or (isinstance(module, DuoAttention) and on_accelerator(module, arch))
            or softmax_on_accelerator(module, arch)
            or (isinstance(module, SVDQuantLinear) and svdquant_on_accelerator(module, arch)))


@dataclass(frozen=True)
class PlacedOp:
    """One operator of one call: ``name`` (module docstring), the module ``path`` and
    ``call`` (from 1), the IR ``op`` and whether the run puts it on the accelerator."""

    name: str
    path: str
    call: int
    op: Op
    accel: bool


def placed_ops(model: Any, inputs: Sequence[Any], arch: ArchSpec,
               routes: Callable[[Any, ArchSpec], bool] | None = None) -> list[PlacedOp]:
    """Every operator of ``model`` run on ``inputs`` (imported from a copy: its caches stay
    untouched), in execution order, placed by the module docstring's rule, a module routed
    to the accelerator by ``routes`` (default :func:`runs_on_accelerator`; the generation
    routes every DuoAttention, prefill too)."""
    routes = routes or runs_on_accelerator
    from mapping.fx_import import import_items

    items = import_items(copy.deepcopy(model), tuple(inputs))
    calls: Counter[str] = Counter()
    out: list[PlacedOp] = []
    for item in items:
        calls[item.path] += 1
        module = model.get_submodule(item.path)
        routed = routes(module, arch)
        lone = item.module_call and len(item.ops) == 1
        base = f"{item.path or ROOT}#{calls[item.path]}"
        for op in item.ops:
            out.append(PlacedOp(base if lone else f"{base}.{op.name}", item.path,
                                calls[item.path], op, routed and op.macs > 0))
    return out


def _record_call(name: str) -> tuple[str, int]:
    """``(path, call)`` of an accelerator record's name ``<path>#<call>...``."""
    path, _, rest = name.partition("#")
    m = re.match(r"\d+", rest)
    if not m:
        raise ValueError(f"accelerator record {name!r} is not named '<path>#<call>...'")
    return path, int(m.group())


def check_coverage(placed: Sequence[PlacedOp], records: Sequence[OpRecord]) -> None:
    """``ValueError`` naming the calls (up to 5 each way) unless the accelerator operators of
    ``placed`` and the run's ``records`` are the same ``(path, call)`` pairs."""
    ours = {(p.path, p.call) for p in placed if p.accel}
    theirs = {_record_call(r.name) for r in records}
    if ours != theirs:
        def show(pairs: set[tuple[str, int]]) -> str:
            return ", ".join(f"{p}#{c}" for p, c in sorted(pairs)[:5]) or "none"

        raise ValueError(f"the import's accelerator operators and the run's records differ: "
                         f"import only {show(ours - theirs)}; records only "
                         f"{show(theirs - ours)}")


@dataclass(frozen=True)
class HostRecord:
    """One operator run in torch float32, costed on the host: ``name`` (module docstring), IR
    ``kind`` and ``what`` (the element-wise op or norm type, else ""), ``elements`` (its
    vector elements), ``macs``, its vector work (``fp32_ops``, ``transcendentals``:
    :func:`mapping.vector_work.vector_work`), DRAM bytes, host ``cycles`` and ``energy_pj``
    and ``bound`` (None, None, "" without a host cost function: ``note`` says why)."""

    name: str
    kind: str
    what: str
    elements: int
    macs: int
    fp32_ops: int
    transcendentals: int
    dram_bytes: int
    cycles: int | None
    energy_pj: float | None
    bound: str
    note: str = ""

    @property
    def costed(self) -> bool:
        """Whether the host has a cost for it."""
        return self.cycles is not None


def host_record(arch: ArchSpec, name: str, op: Op, *, host: Host = DEFAULT_HOST,
                table: EnergyTable | None = None) -> HostRecord:
    """``op`` (named ``name``) on ``arch``'s host: :func:`~mapping.host_cost.host_op_cost`
    (the mapper's ``host`` candidate; a depthwise conv's,
    :func:`~mapping.host_cost.host_depthwise_cost`, ``what`` "depthwise"), or uncosted with a
    note for a contraction or a kind the host has no cost for (module docstring)."""
    what = str(getattr(op, "op", "") or getattr(op, "norm", "") or "")
    moved = op.weight_read_bytes + op.input_bytes + op.output_bytes
    if isinstance(op, Conv2d) and op.depthwise:
        cost = host_depthwise_cost(arch, op, host=host, table=table)
        return HostRecord(name, op.kind, "depthwise", op.vector_elements, op.macs, 2 * op.macs,
                          0, cost.dram_bytes, cost.cycles, cost.energy_pj, cost.bound)
    if op.macs:
        note = (f"no host cost function: {op.kind}, {op.macs} MACs (a contraction; "
                "mapping.host_cost costs MAC-free operators only)")
        return HostRecord(name, op.kind, what, op.vector_elements, op.macs, 0, 0, moved,
                          None, None, "", note)
    try:
        ops, sfu = vector_work(op)
        cost = host_op_cost(arch, op, host=host, table=table)
    except (ValueError, KeyError) as exc:
        return HostRecord(name, op.kind, what, op.vector_elements, 0, 0, 0, moved, None,
                          None, "", f"no host cost function: {exc}")
    return HostRecord(name, op.kind, what, op.vector_elements, 0, ops, sfu, cost.dram_bytes,
                      cost.cycles, cost.energy_pj, cost.bound)


def host_records(model: Any, inputs: Sequence[Any], arch: ArchSpec,
                 records: Sequence[OpRecord], *, host: Host = DEFAULT_HOST,
                 table: EnergyTable | None = None) -> tuple[HostRecord, ...]:
    """A :class:`HostRecord` per operator of ``model`` (prepared as the run runs it, on its
    ``inputs``) that the run leaves in torch on ``arch``, in execution order; the run's
    accelerator ``records`` checked against the rule (:func:`check_coverage`)."""
    from mapping.torch_blocks import W4A16Linear

    from .e2e_w4a16 import w4a16_host_steps

    placed = placed_ops(model, inputs, arch)
    check_coverage(placed, records)
    out: list[HostRecord] = []
    for p in placed:
        if not p.accel:
            out.append(host_record(arch, p.name, p.op, host=host, table=table))
        elif isinstance(model.get_submodule(p.path), W4A16Linear):
            out += [_step_record(p, s) for s in w4a16_host_steps(arch, p.op)]
    return tuple(out)


def _step_record(p: PlacedOp, step: Any) -> HostRecord:
    """The :class:`HostRecord` of host step ``step`` (an ``OpCost`` of
    :func:`mapping.host_cost.host_step`) of accelerator operator ``p``'s mapper choice."""
    what = step.schedule["lowering"]
    return HostRecord(f"{p.name}.{what}", p.op.kind, what, p.op.vector_elements, 0,
                      step.schedule["ops"], step.schedule["transcendentals"], step.dram_bytes,
                      step.cycles, step.energy_pj, step.bound)


class HostCosted:
    """The cycles of a run with accelerator records ``ops`` (``model_cycles``) and host
    records ``host_ops`` (:class:`HostRecord`): a base of :class:`flows.e2e.E2ERun` and
    :class:`flows.e2e_generate.GenerateRun`."""

    ops: tuple
    host_ops: tuple

    @property
    def accel_cycles(self) -> int:
        """The accelerator calls' cycles (cycle model)."""
        return sum(op.model_cycles for op in self.ops)

    @property
    def host_cycles(self) -> int:
        """The host's cycles of the operators left in torch that it has a cost for."""
        return sum(op.cycles or 0 for op in self.host_ops)

    @property
    def total_cycles(self) -> int:
        """``accel_cycles + host_cycles``, sequential: no overlap of host and array modelled
        (:mod:`mapping.host_cost`); without the ops the host has no cost for."""
        return self.accel_cycles + self.host_cycles


def uncosted_kinds(ops: Sequence[HostRecord]) -> dict[str, int]:
    """IR kind -> how many of ``ops`` have no host cost (sorted by kind)."""
    return dict(sorted(Counter(op.kind for op in ops if not op.costed).items()))


def host_summary(run: E2ERun) -> str:
    """One line: the host's operators, cycles and pJ, the accelerator's cycles, their
    sequential total and the operators without a host cost (by kind)."""
    ops = run.host_ops
    pj = sum(op.energy_pj for op in ops if op.energy_pj is not None)
    missing = ", ".join(f"{k} x{n}" for k, n in uncosted_kinds(ops).items()) or "none"
    return (f"host (run in torch float32, costed): {sum(op.costed for op in ops)} of "
            f"{len(ops)} operators, {run.host_cycles} cycles, {pj:.4g} pJ; total "
            f"{run.total_cycles} cycles = accelerator {run.accel_cycles} + host {run.host_cycles} "
            f"(sequential); no host cost: {missing}")


def host_kinds_table(run: E2ERun) -> str:
    """A line per host operator kind (``kind/what``): operators, costed, cycles, pJ."""
    from .e2e_tables import aligned

    rows: dict[str, list] = {}
    for op in run.host_ops:
        row = rows.setdefault(f"{op.kind}/{op.what}" if op.what else op.kind, [0, 0, 0, 0.0])
        row[0] += 1
        if op.costed:
            row[1] += 1
            row[2] += op.cycles
            row[3] += op.energy_pj
    lines = [("host operator", "ops", "costed", "cycles", "pJ")]
    lines += [(k, str(n), str(c), str(cy), f"{pj:.4g}") for k, (n, c, cy, pj) in rows.items()]
    return aligned(lines)
