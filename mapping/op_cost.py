"""The record of what an operator costs on a generated accelerator (:class:`OpCost`), the
error for an operator it cannot run (:class:`Unmappable`), and the rules every accelerator
lowering shares: per-access energies (:func:`arch_energies`), a program's counts priced into
an :class:`OpCost` (:func:`priced`), a built program timed and counted (:func:`timed`), and
costs of programs combined linearly (:func:`combine`, for programs costed from shorter ones).

**Pricing** one program (cycles, instructions, :class:`~hw.front.program_cost.ProgramCost`)
run ``repeat`` times::

    cycles, macs, padded MACs, DRAM bytes, row accesses   one program's x repeat
    utilization   = macs / (PEs x cycles)
    roofline      = max(ceil(padded MACs / PEs), ceil(DRAM bytes / bytes per cycle))
    bound         = "compute" if padded MACs / PEs >= DRAM bytes / bytes per cycle
    energy (pJ)   = padded MACs x E_mac + (scratchpad reads + writes) x E_sp
                    + (accumulator reads + writes) x E_acc + DRAM bytes x E_dram

Layer: mapping (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from hw.front.accel_params import AccelParams, accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.isa import Instruction
from hw.front.program_cost import ProgramCost, program_cost

from .energy import EnergyTable, dram_pj_per_byte, energy_table, mac_pj, sram_access_pj
from .ir import Op

__all__ = ["EXACT_BELOW", "OpCost", "Run", "Unmappable", "arch_energies", "combine", "params",
           "priced", "timed"]

EXACT_BELOW = 1 << 21
"""Default MAC threshold: programs of fewer MACs are built and timed exactly (every op of the
zoo's ``tiny-`` models has at most 1.3M)."""

Run = tuple[int, int, ProgramCost]
"""(cycles, instructions, counts) of a program."""

_SKIP_FROM = 2000       #: instructions from which the cycle model looks for periods to skip
_LINEAR = ("macs", "padded_macs", "dram_read_bytes", "dram_written_bytes",
           "scratchpad_row_reads", "scratchpad_row_writes", "accumulator_row_reads",
           "accumulator_row_writes")


class Unmappable(ValueError):
    """An operator a target cannot run: ``op`` (its name), ``reason``, ``arch`` (the target's
    name, or ""). Built from the operator (or its name) and the reason; pickles."""

    def __init__(self, op: Op | str, reason: str, arch: str = "") -> None:
        self._args = (op, reason, arch)
        self.op = op if isinstance(op, str) else op.name
        self.reason, self.arch = reason, arch
        what = "op" if isinstance(op, str) else op.kind
        where = f" on {arch!r}" if arch else ""
        super().__init__(f"{what} {self.op!r} cannot run{where}: {reason}")

    def __reduce__(self) -> tuple:
        return type(self), self._args


@dataclass(frozen=True)
class OpCost:
    """One operator on one accelerator (:mod:`mapping.accel_cost`). ``schedule``: the lowering
    ("gemm", "conv2d", "svdquant", "long_attention", "duo_steps", "linear_attention"), its
    extents or parameters, ``repeat`` and the kernel's choices; ``energy_breakdown``: pJ of
    "mac", "scratchpad", "accumulator", "dram" (summing to ``energy_pj``); ``exact``: cycles
    from the cycle model on the whole built program (else an estimate, or a composition of
    shorter programs that the schedule names); ``notes``: the lowering rules that applied."""

    op: str
    target: str
    arch: str
    dataflow: str
    schedule: dict[str, Any] = field(hash=False)
    cycles: int
    macs: int
    padded_macs: int
    dram_bytes: int
    instructions: int
    scratchpad_reads: int
    scratchpad_writes: int
    accumulator_reads: int
    accumulator_writes: int
    utilization: float
    roofline_cycles: int
    bound: str
    energy_pj: float
    energy_breakdown: dict[str, float] = field(hash=False)
    exact: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (fresh dicts)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(schedule=dict(self.schedule), energy_breakdown=dict(self.energy_breakdown),
                   notes=list(self.notes))
        return out


@lru_cache(maxsize=64)
def arch_energies(arch: ArchSpec, table: EnergyTable | None = None) -> dict[str, float]:
    """pJ per access on ``arch`` (:mod:`mapping.energy`): "mac" (A-type multiply + C-type
    add), "scratchpad" and "accumulator" (one row of one bank: row bits, bank bytes),
    "dram_byte" (the table's default end)."""
    t = table or energy_table()
    sp, acc = arch.scratchpad, arch.accumulator
    return {"mac": mac_pj(arch.types[0].bits, arch.types[2].bits, table=t),
            "scratchpad": sram_access_pj(8 * sp.row_bytes, sp.capacity_bytes // sp.banks,
                                         table=t),
            "accumulator": sram_access_pj(8 * acc.row_bytes, acc.capacity_bytes // acc.banks,
                                          table=t),
            "dram_byte": dram_pj_per_byte(table=t)}


def priced(arch: ArchSpec, dataflow: str, schedule: dict[str, Any], run: Run, repeat: int,
           exact: bool, notes: tuple[str, ...], table: EnergyTable | None = None) -> OpCost:
    """The :class:`OpCost` of ``repeat`` runs of one program (module docstring); its ``op``
    is left empty for the caller to name."""
    cycles, ins, pc = run
    r = repeat
    macs, padded, dram = pc.macs * r, pc.padded_macs * r, pc.dram_bytes * r
    sp = (pc.scratchpad_row_reads * r, pc.scratchpad_row_writes * r)
    acc = (pc.accumulator_row_reads * r, pc.accumulator_row_writes * r)
    compute, memory = padded / arch.pes, dram / arch.dram.bytes_per_cycle
    e = arch_energies(arch, table or energy_table())
    energy = {"mac": padded * e["mac"], "scratchpad": sum(sp) * e["scratchpad"],
              "accumulator": sum(acc) * e["accumulator"], "dram": dram * e["dram_byte"]}
    return OpCost("", "accel", arch.name, dataflow, schedule, cycles * r, macs, padded, dram,
                  ins * r, sp[0], sp[1], acc[0], acc[1], macs / (arch.pes * cycles * r),
                  max(-(-padded // arch.pes), -(-dram // arch.dram.bytes_per_cycle)),
                  "compute" if compute >= memory else "memory", sum(energy.values()), energy,
                  exact, notes)


def combine(arch: ArchSpec, runs: list[tuple[int, Run]]) -> Run:
    """``sum coef run`` field by field over ``(coef, run)`` (the roofline recomputed)."""
    def lin(get) -> int:
        return sum(coef * get(run) for coef, run in runs)

    c = {f: lin(lambda run, f=f: getattr(run[2], f)) for f in _LINEAR}
    dram = c["dram_read_bytes"] + c["dram_written_bytes"]
    roofline = max(-(-c["padded_macs"] // arch.pes), -(-dram // arch.dram.bytes_per_cycle))
    return lin(lambda run: run[0]), lin(lambda run: run[1]), ProgramCost(
        **c, roofline_cycles=roofline)


@lru_cache(maxsize=16)
def params(arch: ArchSpec) -> AccelParams:
    """The generated accelerator of ``arch`` (memoized :func:`~hw.front.accel_params.
    accel_params`)."""
    return accel_params(arch)


def timed(arch: ArchSpec, program: list[Instruction]) -> Run:
    """(cycles, instructions, counts) of a built program: the cycle model's cycles (equal to
    the RTL's; its search for repeating periods only on long programs, where it pays),
    :func:`~hw.front.program_cost.program_cost`'s counts."""
    cycles = accel_timing(program, params(arch), skip_periods=len(program) > _SKIP_FROM).cycles
    return cycles, len(program), program_cost(program, arch)
