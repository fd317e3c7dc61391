"""The built-in default design and the emit/simulate steps the ``lego`` commands share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from hw.check.report import check_against_netlist, design_report
from hw.front.spec import DesignSpec, SpecError, load_specs, spec_from_dict
from hw.ir.backend import BackendOptions
from hw.rtl.emit import emit_design, write_text_atomic
from sim.design import DesignRun, simulate_design

__all__ = ["DEFAULT_SPEC_YAML", "Emitted", "dataflow_index", "default_spec", "emit",
           "resolve_spec", "simulate"]

#: 4x4 int8 output-stationary GEMM (also shipped as examples/gemm_os.yaml).
DEFAULT_SPEC_YAML = """\
# GEMM C[i,j] += A[i,k] * B[k,j], output-stationary systolic on a 4x4 array:
# A flows right, B flows down, each FU keeps one C[i,j] for the whole reduction.
name: gemm_os
op:
  dims: {i: 8, j: 8, k: 16}
  tensors:
    A: {index: "i, k", role: input, type: int8}
    B: {index: "k, j", role: input, type: int8}
    C: {index: "i, j", role: accumulate, type: int32}
array: [4, 4]
dataflow:
  name: output_stationary
  space: ["i", "j"]
  time: "i + j + k"
  tile: {i: 4, j: 4, k: 16}
  outer_order: [i, j, k]
"""


def default_spec() -> DesignSpec:
    return spec_from_dict(yaml.safe_load(DEFAULT_SPEC_YAML))


def resolve_spec(path: str | None, dims: dict[str, int] | None = None) -> list[DesignSpec]:
    """The dataflows of the spec at ``path`` (or the default), resized by ``dims``: one, or
    several for a fused design."""
    specs = [default_spec()] if path is None else load_specs(path)
    if dims:
        specs = [s.with_extents(dims) for s in specs]
    return specs


def dataflow_index(specs: Sequence[DesignSpec], name: str | None) -> int:
    """Index of the dataflow called ``name`` among ``specs``; 0 when None."""
    names = [s.dataflow.name for s in specs]
    if name is None:
        return 0
    if name not in names:
        raise SpecError(f"--dataflow {name!r} is not in the spec (dataflows: {', '.join(names)})")
    return names.index(name)


@dataclass(frozen=True)
class Emitted:
    verilog: Path
    report: Path
    lines: int
    figures: dict


def emit(specs: Sequence[DesignSpec], out_dir: str | Path,
         backend: BackendOptions | None = None) -> Emitted:
    """Write ``<name>.v`` and ``<name>.json`` (report, cross-checked against the netlist) of
    the design of ``specs``; ``backend``: emit the datapath from the back end's optimized
    graph."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    _, top, verilog = emit_design(specs, backend=backend)
    name = specs[0].name
    figures = design_report(top)
    figures["netlist"] = check_against_netlist(figures, verilog)
    try:
        out.mkdir(parents=True, exist_ok=True)
        v = write_text_atomic(out / f"{name}.v", verilog)
        r = write_text_atomic(out / f"{name}.json", json.dumps(figures, indent=2) + "\n")
    except OSError as exc:
        raise OSError(f"cannot write to {out}: {exc.strerror}") from None
    return Emitted(v, r, verilog.count("\n"), figures)


def simulate(specs: Sequence[DesignSpec], seed: int = 0, engine: str = "cocotb",
             waves: bool = False, dataflow: str | None = None,
             backend: BackendOptions | None = None) -> DesignRun:
    """Simulate the design of ``specs`` running the dataflow named ``dataflow`` (default:
    the first)."""
    return simulate_design(specs, seed=seed, engine=engine, waves=waves,
                           mode=dataflow_index(specs, dataflow), backend=backend)
