"""Joint planning of the dataflows that one fused array serves.

Planned alone, each dataflow picks its own minimum arborescence per input; where two
dataflows pick different sources for an FU, the fused array pays a mux input, and where they
pick different forwarding chains, both chains' registers. :func:`plan_fused` plans them
jointly: every dataflow is re-planned with the others' sources as preferences (an edge another
dataflow already uses costs only its wire; a new source at an FU another dataflow feeds pays a
mux input), in rounds until nothing changes (at most ``rounds``). Deterministic.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence

from .layout import roles
from .plan import ArrayPlan, plan_array
from .spec import DesignSpec, SpecError

__all__ = ["FusionError", "check_fusable", "fused_sources", "plan_fused"]


class FusionError(SpecError):
    """Dataflows that cannot share one array (the message names the difference)."""


def check_fusable(plans: Sequence[ArrayPlan]) -> None:
    """Raise :class:`FusionError` unless ``plans`` share one array and FU arithmetic."""
    first = plans[0]
    for p in plans[1:]:
        a, b = first.spec, p.spec
        if a.array != b.array:
            raise FusionError(f"dataflows {a.dataflow.name!r} and {b.dataflow.name!r} cannot "
                              f"share an array: arrays {a.array} and {b.array}")
        what = ("first input", "second input", "output")
        for r, (x, y) in enumerate(zip(roles(first), roles(p), strict=True)):
            if x.dtype != y.dtype:
                raise FusionError(f"dataflows {a.dataflow.name!r} and {b.dataflow.name!r} "
                                  f"cannot share FUs: their {what[r]}s {x.name} ({x.dtype}) and "
                                  f"{y.name} ({y.dtype}) differ in type")



def fused_sources(plans: Sequence[ArrayPlan]) -> list[dict]:
    """Per input role: FU -> the set of ``(parent, delay)`` sources over ``plans``."""
    roles: list[dict] = [{}, {}]
    for plan in plans:
        for role, tree in enumerate(plan.inputs):
            for f, source in tree.parent.items():
                roles[role].setdefault(f, set()).add(source)
    return roles


def plan_fused(specs: Sequence[DesignSpec], rounds: int = 3) -> list[ArrayPlan]:
    """Plans of ``specs`` (one array, several dataflows) with jointly chosen interconnect."""
    plans = [plan_array(s) for s in specs]
    if len(plans) < 2:
        return plans
    for _ in range(rounds):
        changed = False
        for i, spec in enumerate(specs):
            prefer = fused_sources(plans[:i] + plans[i + 1:])
            plan = plan_array(spec, prefer=prefer)
            if [t.parent for t in plan.inputs] != [t.parent for t in plans[i].inputs]:
                plans[i], changed = plan, True
        if not changed:
            break
    return plans
