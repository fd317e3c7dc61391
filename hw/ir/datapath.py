"""The datapath of an array as decisions: what feeds every FU input, partial sum and bank.

One description, read by both emitters of a datapath: :mod:`hw.ir.lower` (a primitive graph,
for the back end) and :class:`hw.rtl.generate.GeneratedArray` (the direct Amaranth datapath).
A datapath change is made here once; the emitters only translate it.

For one plan or several fused plans (dataflow ``i`` is mode ``i``):

* per input role and FU, its source in each mode that uses the FU: a physical bank's read data
  (:class:`Read`) or a neighbour's operand ``delay`` cycles later (:class:`Forward`; delay 0 is
  a wire). In mode ``i`` the neighbour's operand is its mode-``i`` value, so a forwarding chain
  of one source and delay can be shared by every mode that forwards along it;
* per FU (:class:`FuDatapath`): whether its partial sum ever restarts, where its partial sum
  comes from in each mode (its own accumulator, or an upstream FU's sum some cycles late), when
  it restarts and when its accumulator takes the sum (plan windows, per mode);
* per physical output bank, its writers (:class:`Writer`): at most one writes in any cycle.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..front.fusion import check_fusable
from ..front.layout import BankLayout, bank_layout, roles
from ..front.mac_spec import MacSpec
from ..front.plan import ArrayPlan, Stream, Window

__all__ = ["DatapathDescription", "Forward", "FuDatapath", "OperandRole", "Read", "Writer",
           "describe_datapath"]

FU = tuple[int, ...]


@dataclass(frozen=True)
class Read:
    """The read data of physical bank ``bank``."""

    bank: int


@dataclass(frozen=True)
class Forward:
    """FU ``parent``'s operand, ``delay`` cycles later (0: a wire)."""

    parent: FU
    delay: int


@dataclass(frozen=True)
class OperandRole:
    """One input role: its tensor's name and type (of the first plan) and, per FU, the source
    in each mode that uses the FU, ``((mode, source), ...)`` in mode order. FUs appear in the
    order the plans' interconnect trees list them (first plan first)."""

    name: str
    dtype: object
    sources: dict[FU, tuple[tuple[int, Read | Forward], ...]]

    def muxed(self, f: FU) -> bool:
        """Does FU ``f`` take this operand from different sources in different modes?"""
        return len({s for _, s in self.sources[f]}) > 1


@dataclass(frozen=True)
class FuDatapath:
    """What one FU does in each mode.

    ``psum``: ``(mode, "acc")`` (its own accumulator: a stationary output) or
    ``(mode, (up, d_time))`` (FU ``up``'s sum, ``d_time`` cycles late), for the modes whose
    reduction runs through the FU; without one, its product is final. ``first``:
    ``(mode, windows)`` when the partial sum restarts (``None``: every cycle the mode runs).
    ``enable``: ``(mode, window)`` when the accumulator takes the sum. ``restarts``: the
    ``first`` control is not constant 0.
    """

    psum: tuple[tuple[int, object], ...]
    first: tuple[tuple[int, tuple[Window, ...] | None], ...]
    enable: tuple[tuple[int, Window], ...]

    @property
    def restarts(self) -> bool:
        return any(ws is None or bool(ws) for _, ws in self.first)

    @property
    def accumulator(self) -> bool:
        """Does some mode accumulate in place (the FU needs an accumulator register)?"""
        return any(s == "acc" for _, s in self.psum)


@dataclass(frozen=True)
class Writer:
    """Output stream ``stream`` of mode ``mode``: FU ``root``'s sum, written in ``windows``."""

    mode: int
    stream: Stream
    root: FU
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class DatapathDescription:
    """The datapath of ``plans`` (see the module docstring)."""

    plans: tuple[ArrayPlan, ...]
    layout: BankLayout
    mac: MacSpec
    operands: tuple[OperandRole, OperandRole]
    fus: dict[FU, FuDatapath]
    writers: dict[int, tuple[Writer, ...]]

    @property
    def fused(self) -> bool:
        return len(self.plans) > 1


def describe_datapath(plans: Sequence[ArrayPlan]) -> DatapathDescription:
    """The datapath of the array serving ``plans`` (one, or several fused: mode ``i`` runs
    ``plans[i]``). Raises :class:`~hw.front.fusion.FusionError` if they cannot share it."""
    plans = tuple(plans)
    if not plans:
        raise ValueError("a datapath needs at least one plan")
    check_fusable(plans)
    layout = bank_layout(plans)
    a, b, c = roles(plans[0])
    mac = MacSpec(a.dtype, b.dtype, c.dtype.bits)
    operands = tuple(_operand_role(plans, layout, role) for role in range(2))
    fus = sorted({f for p in plans for f in p.fus})
    return DatapathDescription(plans, layout, mac, operands,
                               {f: _fu(plans, f) for f in fus}, _writers(plans, layout))


def _operand_role(plans: tuple[ArrayPlan, ...], layout: BankLayout, role: int) -> OperandRole:
    x = roles(plans[0])[role]
    sources: dict[FU, list] = {}
    for i, plan in enumerate(plans):
        tree = plan.inputs[role]
        roots = {s.root: layout.bank_of[i][s.bank] for s in plan.streams
                 if s.tensor == tree.tensor.name}
        for f, (parent, delay) in tree.parent.items():
            src = Read(roots[f]) if f in roots else Forward(parent, delay)
            sources.setdefault(f, []).append((i, src))
    return OperandRole(x.name, x.dtype, {f: tuple(s) for f, s in sources.items()})


def _fu(plans: tuple[ArrayPlan, ...], f: FU) -> FuDatapath:
    psum, first, enable = [], [], []
    for i, plan in enumerate(plans):
        if f not in plan.fus:
            continue
        out = plan.output
        if out.vector is None:              # no reduction: every product is final
            first.append((i, None))
            continue
        first.append((i, tuple(out.first.get(f, ()))))
        if out.vector.kind == "stationary":
            psum.append((i, "acc"))
            enable.append((i, plan.fus[f]))
        else:
            up = tuple(a - b for a, b in zip(f, out.vector.d_space, strict=True))
            if up in plan.fus:
                psum.append((i, (up, out.vector.d_time)))
    return FuDatapath(tuple(psum), tuple(first), tuple(enable))


def _writers(plans: tuple[ArrayPlan, ...], layout: BankLayout) -> dict[int, tuple[Writer, ...]]:
    writers: dict[int, list[Writer]] = {b: [] for b, (role, _) in enumerate(layout.banks)
                                        if role == 2}
    for i, plan in enumerate(plans):
        for stream in plan.streams:
            if stream.tensor == plan.output.tensor.name:
                writers[layout.bank_of[i][stream.bank]].append(
                    Writer(i, stream, stream.root, tuple(plan.output.write[stream.root])))
    return {b: tuple(w) for b, w in writers.items()}
