"""The cost of a generated design without building it: cycles, utilization, memory and
register bits, in plain Python (no Amaranth), for mappers that cost thousands of designs.

Given the plans of one array (one :class:`~hw.front.plan.ArrayPlan`, or several fused ones)
and optionally the back end's options, per dataflow (mode)::

    cycles      = plan.run_cycles + datapath_latency + accumulator_read
                = (n_tiles - 1) * period + span + latency + read    (= GeneratedArray.run_cycles)
    utilization = MACs of the mode's own op / (array FUs x cycles),   MACs = prod(op extents)

``accumulator_read`` is 1 when the FUs accumulate in place (:func:`accumulates_in_fu`) with
the direct datapath (write-back reads the register a cycle after the last MAC), else 0;
``datapath_latency`` is the pipeline depth of the back end's optimized datapath (0 without).
Memory bits: the physical banks of :func:`hw.front.layout.bank_layout`, depth x element width.
Register bits by purpose are exactly what :class:`hw.rtl.generate.GeneratedArray` counts when
it elaborates (and the report and the netlist cross-check show): the controllers' counters and
histories (:mod:`hw.rtl.controller`), address bases, registered read addresses, the host-port
select, forwarding chains, accumulators and write-back; with a back end, the optimized graph's
registers. ``tests/hw/test_cost.py`` holds every figure equal to the RTL's on every example.

Layer: hw (pure: imports hw.front and hw.ir, never Amaranth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

from .front.fusion import check_fusable
from .front.layout import bank_layout, roles
from .front.plan import ArrayPlan, Window
from .front.spec import DesignSpec
from .ir.datapath import Forward, describe_datapath
from .ir.lower import LoweredDatapath, lower_array

if TYPE_CHECKING:   # the back end pulls in the LP solver: imported only when it is used
    from .ir.backend import BackendOptions, OptimizedDatapath

__all__ = ["ControllerShape", "DesignCost", "ModeCost", "accumulates_in_fu", "accumulator_read",
           "controller_shape", "design_cost",
           "measured_utilization", "register_purpose", "utilization_of"]


def accumulates_in_fu(plans: Sequence[ArrayPlan]) -> bool:
    """A single stationary dataflow keeps its accumulator inside the FU module (and, with the
    direct datapath, write-back reads that register a cycle after the last MAC); fused or
    chained dataflows use the combinational FU and, if needed, an accumulator beside it."""
    kinds = {p.output.vector.kind if p.output.vector else "none" for p in plans}
    return kinds == {"stationary"} and len(plans) == 1


def accumulator_read(plans: Sequence[ArrayPlan], backend: BackendOptions | None = None) -> int:
    """Cycles the write-back waits for an in-FU accumulator: 1 with the direct datapath when
    :func:`accumulates_in_fu`, else 0 (GeneratedArray's ``write_shift``)."""
    return 1 if accumulates_in_fu(plans) and backend is None else 0


def utilization_of(macs: int, fus: int, cycles: int) -> float:
    """``macs / (fus x cycles)``: the fraction of FU-cycles that do a MAC."""
    for name, value in (("macs", macs), ("fus", fus), ("cycles", cycles)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return macs / (fus * cycles)


def measured_utilization(spec: DesignSpec, cycles: int) -> float:
    """Utilization of a run of ``spec`` (one dataflow) that took ``cycles`` (e.g. measured in
    simulation): its op's MACs / (array FUs x ``cycles``)."""
    return utilization_of(prod(spec.op.extents), prod(spec.array), cycles)


@dataclass(frozen=True)
class ModeCost:
    """Cycles and MACs of one dataflow (mode) of a design; see the module docstring."""

    mode: int
    dataflow: str
    plan_cycles: int          #: the plan's run: (n_tiles - 1) x period + span
    cycles_per_tile: int      #: period: a tile starts every this many cycles
    tile_latency: int         #: span: a tile's first to last activity
    tiles: int
    accumulator_read: int
    datapath_latency: int
    cycles: int               #: busy cycles of a run (= GeneratedArray.run_cycles(mode))
    macs: int                 #: MACs of this mode's own op
    fus: int                  #: FUs of the array

    def __post_init__(self) -> None:
        for name in ("mode", "plan_cycles", "cycles_per_tile", "tile_latency", "tiles",
                     "accumulator_read", "datapath_latency", "cycles", "macs", "fus"):
            value = getattr(self, name)
            low = 0 if name in ("mode", "accumulator_read", "datapath_latency") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"ModeCost.{name} must be an int >= {low}, got {value!r}")
        if self.accumulator_read > 1:
            raise ValueError(f"ModeCost.accumulator_read must be 0 or 1, got "
                             f"{self.accumulator_read}")
        total = self.plan_cycles + self.datapath_latency + self.accumulator_read
        if self.cycles != total:
            raise ValueError(f"ModeCost.cycles must be plan_cycles + datapath_latency + "
                             f"accumulator_read = {total}, got {self.cycles}")

    @property
    def utilization(self) -> float:
        """MACs / (FUs x cycles)."""
        return utilization_of(self.macs, self.fus, self.cycles)


@dataclass(frozen=True)
class DesignCost:
    """Per-mode figures (``modes[i]``: dataflow ``i``), the physical banks ``(role, depth,
    width)`` and register bits by purpose (sorted ``(purpose, bits)`` pairs)."""

    modes: tuple[ModeCost, ...]
    used_fus: int
    banks: tuple[tuple[int, int, int], ...]
    register_bits: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if not self.modes or [m.mode for m in self.modes] != list(range(len(self.modes))):
            raise ValueError(f"DesignCost.modes must be modes 0..n-1 in order, got "
                             f"{[m.mode for m in self.modes]}")
        if not 1 <= self.used_fus <= self.modes[0].fus:
            raise ValueError(f"DesignCost.used_fus must be in 1..{self.modes[0].fus}, got "
                             f"{self.used_fus}")
        if not self.banks or any(r not in (0, 1, 2) or d < 1 or w < 1 for r, d, w in self.banks):
            raise ValueError(f"DesignCost.banks must be (role 0..2, depth >= 1, width >= 1) "
                             f"triples, got {self.banks}")
        names = [p for p, _ in self.register_bits]
        if names != sorted(set(names)) or any(b < 0 for _, b in self.register_bits):
            raise ValueError(f"DesignCost.register_bits must be sorted distinct purposes with "
                             f"bits >= 0, got {self.register_bits}")

    def mode(self, mode: int) -> ModeCost:
        """The figures of dataflow ``mode``; ValueError if there is no such mode."""
        if isinstance(mode, bool) or not isinstance(mode, int) or \
                not 0 <= mode < len(self.modes):
            raise ValueError(f"mode must be in 0..{len(self.modes) - 1}, got {mode!r}")
        return self.modes[mode]

    def cycles(self, mode: int = 0) -> int:
        return self.mode(mode).cycles

    def utilization(self, mode: int = 0) -> float:
        return self.mode(mode).utilization

    @property
    def fus(self) -> int:
        return self.modes[0].fus

    @property
    def memory_bits(self) -> int:
        """Bits of all physical banks: sum of depth x width."""
        return sum(d * w for _, d, w in self.banks)

    @property
    def registers(self) -> dict[str, int]:
        """Register bits by purpose (as ``GeneratedArray.register_bits``)."""
        return dict(self.register_bits)

    @property
    def total_register_bits(self) -> int:
        return sum(b for _, b in self.register_bits)


def design_cost(plans: Sequence[ArrayPlan], backend: BackendOptions | None = None,
                *, datapath: tuple[LoweredDatapath, OptimizedDatapath] | None = None
                ) -> DesignCost:
    """The cost of the array for ``plans`` (one plan or fused ones, in mode order) built with
    ``backend`` (None: the direct datapath). With a backend the datapath is lowered and
    optimized here (LP pipelining: slow on big arrays), unless ``datapath`` gives the
    ``(lowered, optimized)`` pair already made for these plans and options."""
    if isinstance(plans, ArrayPlan):
        raise TypeError("design_cost takes a sequence of plans: pass [plan]")
    plans = list(plans)
    if not plans or not all(isinstance(p, ArrayPlan) for p in plans):
        raise ValueError(f"design_cost needs one or more ArrayPlans, got {plans!r}")
    check_fusable(plans)
    if datapath is not None and backend is None:
        raise ValueError("design_cost: a datapath without backend options")
    if backend is not None and datapath is None:
        from .ir.backend import optimize_datapath

        lowered = lower_array(plans)
        datapath = (lowered, optimize_datapath(lowered, backend))
    latency = datapath[1].latency if datapath is not None else 0
    read = accumulator_read(plans, backend)
    fus = prod(plans[0].spec.array)
    modes = tuple(ModeCost(i, p.spec.dataflow.name, p.run_cycles, p.period, p.span, p.n_tiles,
                           read, latency, p.run_cycles + latency + read,
                           prod(p.spec.op.extents), fus)
                  for i, p in enumerate(plans))
    widths = [t.dtype.bits for t in roles(plans[0])]
    banks = tuple((r, d, widths[r]) for r, d in bank_layout(plans).banks)
    bits = _register_bits(plans, latency, read, datapath)
    return DesignCost(modes, len({f for p in plans for f in p.fus}), banks,
                      tuple(sorted((k, v) for k, v in bits.items() if v)))


# -- register bits, as GeneratedArray counts them -------------------------------------------
def _range_bits(n: int) -> int:
    """Width of ``Signal(range(n))``: the bits of ``n - 1`` (0 for ``range(1)``)."""
    return (n - 1).bit_length()


def _windows(plan: ArrayPlan, write_shift: int):
    """Every window a plan's controller decodes (write-back ones ``write_shift`` late)."""
    yield from plan.fus.values()
    out = plan.output.tensor.name
    for stream in plan.streams:
        shift = write_shift if stream.tensor == out else 0
        yield Window(stream.window.start + shift, stream.window.length)
    for ws in plan.output.first.values():
        yield from ws
    for ws in plan.output.write.values():
        yield from (Window(w.start + write_shift, w.length) for w in ws)


@dataclass(frozen=True)
class ControllerShape:
    """The registers of one dataflow's tile controller (:class:`hw.rtl.controller.
    TileController` builds exactly these; :func:`design_cost` counts them).

    ``*_range``: a counter ``Signal(range(n))``; ``counters``: ``(dim index, tiles)`` of the
    tile counters of dims with more than one tile, outermost first; ``history``: tiles of
    history kept (address bases, fresh flags) = the deepest window lag + 1; ``base_bits``:
    per tensor with more than one entry, the width of its address-base registers."""

    max_lag: int
    cycle_range: int
    phase_range: int
    tile_range: int
    counters: tuple[tuple[int, int], ...]
    base_bits: tuple[tuple[str, int], ...]

    @property
    def history(self) -> int:
        return self.max_lag + 1

    @property
    def bits(self) -> tuple[int, int]:
        """(control bits, address-generator bits)."""
        control = (_range_bits(self.cycle_range) + _range_bits(self.phase_range)
                   + _range_bits(self.tile_range) + sum(_range_bits(n) for _, n in self.counters)
                   + self.history)
        return control, sum(self.history * w for _, w in self.base_bits)


def controller_shape(plan: ArrayPlan, tail: int = 0, write_shift: int = 0) -> ControllerShape:
    """The controller of ``plan`` whose busy lasts ``tail`` cycles longer than the plan's run
    and whose write-back uses its windows ``write_shift`` cycles late (the tile history must
    reach that far). The tile counter never wraps before the run ends (a wrapped one would
    revive tiles)."""
    period = plan.period
    max_lag = max(w.start // period + 1 for w in _windows(plan, write_shift)) + 1
    dims = plan.spec.op.dims
    counters = tuple((dims.index(n), plan.n_tiles_per_dim[dims.index(n)])
                     for n in plan.spec.dataflow.outer_order
                     if plan.n_tiles_per_dim[dims.index(n)] > 1)
    bases: dict[str, int] = {}
    for stream in plan.streams:
        if stream.tensor not in bases and stream.entries != 1:
            bases[stream.tensor] = (stream.depth * 2).bit_length()
        bases.setdefault(stream.tensor, 0)
    return ControllerShape(max_lag, plan.run_cycles + tail + 1, max(period, 2),
                           plan.n_tiles + max_lag + 2 + tail // period, counters,
                           tuple((k, w) for k, w in bases.items() if w))


def _controller_bits(plan: ArrayPlan, tail: int, write_shift: int, bits: Counter) -> None:
    """TileController: cycle, phase, tile and per-dim tile counters, the fresh-tile history
    (control) and per tensor a history of address bases (address generators)."""
    control, address = controller_shape(plan, tail, write_shift).bits
    bits["control"] += control
    bits["address generators"] += address


def _register_bits(plans: list[ArrayPlan], latency: int, write_shift: int,
                   datapath: tuple[LoweredDatapath, OptimizedDatapath] | None) -> Counter:
    bits: Counter[str] = Counter()
    if len(plans) == 1:
        bits["control"] += 2                                    # busy, done
        _controller_bits(plans[0], latency + write_shift, write_shift, bits)
    else:
        bits["control"] += _range_bits(len(plans)) + 1 + len(plans)   # mode, done, busy each
        for plan in plans:
            _controller_bits(plan, latency, 0, bits)
    layout = bank_layout(plans)
    bits["memory read addresses"] += sum((d - 1).bit_length() for _, d in layout.banks)
    bits["host port"] += max(1, (len(layout.banks) - 1).bit_length())
    a, _, c = roles(plans[0])
    acc_bits = c.dtype.bits
    rmw = int(any(p.accumulates_across_tiles for p in plans))
    for role, depth in layout.banks:
        if role == 2:   # en, addr, value (direct datapath), fresh; + their latency delays
            addr = _range_bits(max(depth, 2))
            bits["write-back"] += (1 + addr + rmw + latency * (1 + addr + rmw)
                                   + (acc_bits if datapath is None else 0))
    if datapath is None:
        _direct_datapath_bits(plans, acc_bits, bits)
    else:
        lowered, optimized = datapath
        for name, node in optimized.graph.nodes.items():
            if node.kind == "register":
                bits[register_purpose(name, lowered)] += node.width
    return bits


def _direct_datapath_bits(plans: list[ArrayPlan], acc_bits: int, bits: Counter) -> None:
    """From the datapath description the generator reads (:mod:`hw.ir.datapath`): forwarding
    chains (one per source and delay), accumulators (in every FU, or beside those that
    accumulate in some mode)."""
    desc = describe_datapath(plans)
    for x in desc.operands:
        chains = {s for by_mode in x.sources.values() for _, s in by_mode
                  if isinstance(s, Forward)}
        bits["operand forwarding"] += sum(s.delay * x.dtype.bits for s in chains)
    psums = {s for fu in desc.fus.values() for _, s in fu.psum if s != "acc"}
    bits["partial-sum forwarding"] += sum(d * acc_bits for _, d in psums)
    owners = desc.fus if accumulates_in_fu(plans) else [
        f for f, fu in desc.fus.items() if fu.accumulator]
    bits["accumulators"] += acc_bits * len(owners)


def register_purpose(name: str, lowered: LoweredDatapath) -> str:
    """Report purpose of register ``name`` of an optimized datapath graph; registers the
    ``lowered`` graph lacks were inserted by pipelining."""
    if name not in lowered.graph:
        return "pipeline"
    if name.startswith("acc_"):
        return "accumulators"
    if name.startswith("psum_"):
        return "partial-sum forwarding"
    if name.startswith("wb_b"):
        return "write-back"
    return "operand forwarding"
