"""The LEGO back end on a lowered datapath: logic removal, reduction trees, broadcast rewiring,
LP pipelining; the result is what :class:`~hw.generate.GeneratedArray` emits.

Passes, in order (each function-preserving; :mod:`hw.passes`, :mod:`hw.pipeline`):

1. ``propagate_constants``: control that is constant for the design (and, with ``modes``, the
   dataflows left out) is folded; logic that no configured dataflow uses is deleted;
2. ``extract_reduction_trees``: chains of adders become balanced trees;
3. ``split_fanout``: a node driving more than ``max_fanout`` consumers drives a tree of buffers;
4. ``insert_pipeline`` + ``apply_pipeline``: registers at minimum bit cost so that no
   combinational path inside a stage exceeds ``stage_budget``. Every input sits at stage 0 and
   the outputs are aligned, so the pipelined datapath computes the same values ``latency``
   cycles later: the generator delays the write-back control and the end of the run by as much.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .lower import LoweredDatapath
from .passes import extract_reduction_trees, propagate_constants, split_fanout
from .pipeline import PipelineResult, apply_pipeline, insert_pipeline
from .primitive import PrimitiveGraph

__all__ = ["BackendOptions", "OptimizedDatapath", "optimize_datapath"]


@dataclass(frozen=True)
class BackendOptions:
    """What the back end does. ``stage_budget``: the combinational budget per pipeline stage in
    :data:`hw.primitive.DEFAULT_DELAY` units (a multiplier is 1.0), ``None`` for no pipelining;
    ``max_fanout``: broadcast limit, ``None`` for none; ``reduction_trees``: rebalance adder
    chains; ``solver``: the LP solver, "highs" or "cbc"."""

    stage_budget: float | None = None
    max_fanout: int | None = None
    reduction_trees: bool = True
    solver: str = "highs"

    def __post_init__(self) -> None:
        b = self.stage_budget
        if b is not None and (isinstance(b, bool) or not isinstance(b, int | float)
                              or not math.isfinite(b) or b <= 0):
            raise ValueError(f"stage_budget must be a positive number or None, got {b!r}")
        f = self.max_fanout
        if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 2):
            raise ValueError(f"max_fanout must be an int >= 2 or None, got {f!r}")
        if self.solver not in ("highs", "cbc"):
            raise ValueError(f"solver must be 'highs' or 'cbc', got {self.solver!r}")


@dataclass(frozen=True)
class OptimizedDatapath:
    """The emitted graph and what each pass did (``stats``: figures for the report)."""

    graph: PrimitiveGraph
    latency: int
    pipeline: PipelineResult | None
    stats: dict = field(default_factory=dict)


def _figures(graph: PrimitiveGraph) -> dict:
    return {"nodes": len(graph.nodes), "register_bits": graph.register_bits(),
            "longest_path": graph.longest_path()[0]}


def optimize_datapath(lowered: LoweredDatapath, options: BackendOptions,
                      fixed: dict[str, int] | None = None) -> OptimizedDatapath:
    """Run the passes of the module docstring on ``lowered.graph``; ``fixed`` pins control
    inputs to constants (e.g. ``{"mode_2": 0}`` when dataflow 2 is never configured)."""
    graph = lowered.graph
    stats = {"lowered": _figures(graph)}
    graph = propagate_constants(graph, dict(fixed or {}))
    stats["constants_folded"] = _figures(graph)
    if options.reduction_trees:
        graph = extract_reduction_trees(graph)
        stats["reduction_trees"] = _figures(graph)
    if options.max_fanout is not None:
        graph = split_fanout(graph, options.max_fanout)
        stats["fanout_split"] = _figures(graph)
    result = None
    if options.stage_budget is not None:
        result = insert_pipeline(graph, options.stage_budget, solver=options.solver)
        graph = apply_pipeline(graph, result)
        stats["pipelined"] = _figures(graph) | {
            "stage_budget": options.stage_budget, "latency": result.latency,
            "inserted_register_bits": result.register_bits,
            "lp_solve_s": round(result.solve_s, 4)}
    return OptimizedDatapath(graph, result.latency if result else 0, result, stats)
