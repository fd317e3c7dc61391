"""What the kernels of on-chip chains (the workload units' kernels) share: the dataflow they
run on, blocks of a dim, unit commands by name.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from .arch import ArchSpec
from .isa import UNIT_MODES, UNIT_NAMES, Instruction
from .spec_model import SpecError

__all__ = ["blocks", "chain_dataflow", "unit_command"]


def unit_command(unit: str, mode: str, **fields: int) -> Instruction:
    """The ``unit`` instruction of ``unit``'s ``mode`` with ``fields``."""
    return Instruction("unit", (("unit", UNIT_NAMES.index(unit)),
                                ("mode", UNIT_MODES[unit].index(mode)), *fields.items()))


def blocks(total: int, size: int) -> list[tuple[int, int]]:
    """``(start, extent)`` of the blocks of ``size`` covering ``0 .. total - 1``."""
    return [(s, min(size, total - s)) for s in range(0, total, size)]


def chain_dataflow(arch: ArchSpec, dataflow: str | None, kernel: str) -> tuple[int, int]:
    """(index, array edge) of the dataflow a chain runs on: ``dataflow``, or the first one
    mapping i to time only with j and k on the array (A rows over i, B rows over k, C rows over
    i: the layouts the chains assume); ``SpecError`` naming ``kernel`` otherwise."""
    names = [f.name for f in arch.dataflows]
    fitting = [name for name in names
               if arch.spatial_extents(name)[0] == 0 and min(arch.spatial_extents(name)[1:])]
    if dataflow is None:
        if not fitting:
            raise SpecError(f"architecture {arch.name!r} has no dataflow keeping i in time "
                            f"only (weight-stationary), which the {kernel} kernel needs")
        dataflow = fitting[0]
    elif dataflow not in fitting:
        arch.dataflow(dataflow)                  # unknown names: the architecture's error
        raise SpecError(f"dataflow {dataflow!r} does not keep i in time only; the {kernel} "
                        f"kernel runs on {', '.join(fitting) or 'none of them'}")
    return names.index(dataflow), min(arch.spatial_extents(dataflow)[1:])
