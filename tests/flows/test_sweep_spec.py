"""Sweep files (flows.sweep_spec) and their constraints (flows.sweep_constraints): points and
deterministic ids, and every bad file rejected with a clear error before any work."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from flows.sweep_constraints import ConstraintError, parse_constraint
from flows.sweep_eval import evaluate
from flows.sweep_spec import (
    SweepError,
    load_sweep,
    parse_model,
    point_id,
    sweep_from_dict,
)

FUSED, GEMMINI = "examples/arch/lego_fused.yaml", "examples/arch/gemmini_like.yaml"


def sweep(**changes):
    d = {"name": "t", "models": ["tiny-llama3-8b-duo"], "base": [FUSED, GEMMINI],
         "axes": {"array": ["8x8", [16, 16]], "scratchpad_kib": [64, 256]}}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


def test_points_product_and_inputs():
    spec = sweep_from_dict(sweep(models=["tiny-sana-0.6b", {"name": "tiny-llama3-8b-duo",
                                                            "options": {"phase": "prefill"}}]))
    points = spec.points
    assert len(points) == 2 * 2 * 2 * 2                     # bases x arrays x pads x models
    ids = [i for i, _ in points]
    assert len(set(ids)) == len(ids)
    first = points[0][1]
    assert first == {"model": "tiny-sana-0.6b", "base": FUSED,
                     "array": "8x8", "types": "int8,int8,int32", "scratchpad_kib": 64,
                     "accumulator_kib": 64, "dram_bytes_per_cycle": 16,
                     "dataflows": "output_stationary+weight_stationary+input_stationary"
                                  "+spatial_reduction",
                     "unit_lanes": 16, "objective": "cycles", "measure": ["cost"]}
    assert points[1][1]["model"] == "tiny-llama3-8b-duo phase=prefill"
    assert parse_model("tiny-llama3-8b-duo phase=prefill context=64") == (
        "tiny-llama3-8b-duo", {"phase": "prefill", "context": 64})
    same = sweep_from_dict(sweep(models=["tiny-sana-0.6b", "tiny-llama3-8b-duo  phase=prefill"]))
    assert same.points == points
    assert {p["base"] for _, p in points} == {FUSED, GEMMINI}


def test_ids_are_deterministic():
    a, b = sweep_from_dict(sweep()), sweep_from_dict(sweep())
    assert a.points == b.points
    # the id is the SHA-256 of the canonical JSON: fixed for fixed inputs, on any machine
    assert point_id({"b": [1, 2.5], "a": "x"}) == hashlib.sha256(
        b'{"a":"x","b":[1,2.5]}').hexdigest()
    # an axis whose only value is the base's keeps every id; another value changes them
    same = sweep_from_dict(sweep(axes={"array": ["8x8", "16x16"], "scratchpad_kib": [64, 256],
                                       "dram_bytes_per_cycle": [16]}))
    assert same.points == a.points
    other = sweep_from_dict(sweep(axes={"array": ["8x8", "16x16"], "scratchpad_kib": [64, 256],
                                        "dram_bytes_per_cycle": [8]}))
    assert not {i for i, _ in other.points} & {i for i, _ in a.points}


def test_constraints_and_dataflow_sets():
    spec = sweep_from_dict(sweep(axes={"array": ["8x8", "16x16", "32x32"],
                                       "dataflows": ["all", "output_stationary",
                                                     ["output_stationary",
                                                      "weight_stationary"]]},
                                 constraints=["pes <= 256", "not rows > cols"]))
    values = {(p["base"], p["array"], p["dataflows"]) for _, p in spec.points}
    assert {a for _, a, _ in values} == {"8x8", "16x16"}
    assert (GEMMINI, "8x8", "output_stationary+weight_stationary") in values
    assert (FUSED, "16x16", "output_stationary") in values
    assert len(spec.points) == 2 * 2 * 3 - 2          # gemmini: all = the listed pair


def test_constraint_expressions():
    c = parse_constraint("64 <= pes <= 1024 and (scratchpad_kib / 4 >= accumulator_kib or "
                         "-rows < 0)")
    assert c({"pes": 256, "scratchpad_kib": 256, "accumulator_kib": 64, "rows": 16})
    assert not c({"pes": 4096, "scratchpad_kib": 256, "accumulator_kib": 64, "rows": 16})
    with pytest.raises(ConstraintError, match="division by zero"):
        parse_constraint("pes / (rows - 16) > 1")({"pes": 256, "rows": 16})
    for bad, message in (("pes", "must be a comparison"), ("pes ** 2 < 9", "not allowed"),
                         ("__import__('os') == 1", "not allowed"), ("pes <", "does not parse"),
                         ("pes in (1, 2)", "not allowed"), ("'a' < pes", "only numbers"),
                         ("area <= 5", "unknown variable 'area'")):
        with pytest.raises(ConstraintError, match=message):
            parse_constraint(bad)


@pytest.mark.parametrize("changes, message", [
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"axes": {"arrays": ["8x8"]}}, r"axes.arrays: unknown axis 'arrays'; did you mean 'array'"),
    ({"axes": {"array": []}}, "axes.array is empty"),
    ({"axes": {"array": ["8x8", "8x8"]}}, "'8x8' is given twice"),
    ({"axes": {"array": ["16by16"]}}, r"axes.array\[0\] must be ROWSxCOLS"),
    ({"axes": {"scratchpad_kib": [0]}}, "must be a positive integer, got 0"),
    ({"axes": {"types": ["int8,int8"]}}, "three types"),
    ({"axes": {"types": ["int8,int8,float32"]}}, "unknown integer type 'float32'"),
    ({"axes": {"dataflows": ["input_stationary"]}},
     "gemmini_like.yaml has no dataflow 'input_stationary'"),
    ({"constraints": ["pes > 1024"]}, "has no points: .*'pes > 1024' rejects 8"),
    ({"constraints": ["edge <= 16"]}, r"constraints\[0\]: .*unknown variable 'edge'"),
    ({"models": ["tiny-llama"]}, r"models\[0\]: unknown model 'tiny-llama'"),
    ({"models": []}, "models is empty"),
    ({"models": [{"name": "tiny-sana-0.6b", "options": {"phsae": 1}}]}, "no option 'phsae'"),
    ({"models": ["tiny-sana-0.6b phsae=1"]}, "no option 'phsae'"),
    ({"models": ["tiny-sana-0.6b prefill"]}, "expected NAME OPTION=VALUE"),
    ({"models": [{"name": "tiny-llama3-8b-duo", "options": {"phase": "1"}}]},
     "cannot be written as OPTION=VALUE"),
    ({"models": ["examples/models/tiny_mlp.py:nope"]}, "defines no function 'nope'"),
    ({"models": ["missing.py:build"]}, "cannot read model file 'missing.py'"),
    ({"base": "missing.yaml"}, r"base\[0\]: cannot read architecture missing.yaml"),
    ({"base": [FUSED, FUSED]}, "is given twice"),
    ({"measure": ["cost", "aera"]}, r"measure\[1\]: unknown measure 'aera'.*'area'"),
    ({"measure": ["cost", "cost"]}, "measure: 'cost' is given twice"),
    ({"rtl": {"samples": 0}}, "rtl.samples: expected samples >= 1"),
    ({"rtl": {"sample": 2}}, "rtl.sample: unknown key 'sample'"),
    ({"axes": {"unit_lanes": [8]}}, "unit_lanes: base .*gemmini_like.yaml has no workload "
                                    "unit with lanes"),
    ({"constraints": ["unit_lanes > 64"]}, "has no points"),
    ({"objective": "speed"}, "objective must be one of"),
    ({"name": "a b"}, "name must be"),
])
def test_bad_sweeps(changes, message):
    with pytest.raises(SweepError, match=message):
        sweep_from_dict(sweep(**changes))


def test_file_models_and_defaults():
    spec = sweep_from_dict({"name": "f", "models": ["examples/models/tiny_mlp.py:build"]})
    (_, inputs), = spec.points
    assert inputs["base"] == "examples/arch/lego_fused.yaml" and inputs["array"] == "16x16"
    assert inputs["model"] == "examples/models/tiny_mlp.py:build"
    out = evaluate(inputs)                          # imported by torch.fx in the worker
    assert out["macs"] > 0 and set(out["dataflows"]) == {"linear"}


def test_load_sweep_names_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nmodels: [tiny-sana-0.6b]\naxes: {array: [8x8], bogus: [1]}\n")
    with pytest.raises(SweepError, match=rf"^{path}: axes.bogus: unknown axis"):
        load_sweep(path)
    path.write_text("name: t\nmodels: [tiny-sana-0.6b\n")
    with pytest.raises(SweepError, match=rf"^{path}:3:1: not valid YAML"):
        load_sweep(path)
    assert len(load_sweep("examples/sweeps/lego_vs_gemmini.yaml").points) == 90


def test_cli_rejects_before_any_work(tmp_path):
    path, store = tmp_path / "s.yaml", tmp_path / "s.db"
    path.write_text("name: t\nmodels: [tiny-sana-0.6b]\naxes: {array: [8x8]}\n"
                    "constraints: ['pez <= 1024']\n")
    r = subprocess.run([sys.executable, "-m", "flows.cli", "sweep", str(path), "--store",
                        str(store)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"lego: error: {path}: constraints[0]: constraint 'pez <= 1024'"
                               f": unknown variable 'pez'; did you mean 'pes'?")
    assert "Traceback" not in r.stderr and not store.exists()


def test_unit_lanes_axis_and_rtl_inputs():
    """``unit_lanes`` sets every laned unit's lanes (the base's value leaves the units as
    declared); ``rtl`` joins a point's inputs only when measured, with its defaults."""
    from flows.sweep_eval import arch_for

    spec = sweep_from_dict(sweep(base=[FUSED], axes={"unit_lanes": [8, 16]},
                                 measure=["cost", "rtl"], rtl={"samples": 3}))
    points = [inputs for _, inputs in spec.points]
    assert [p["unit_lanes"] for p in points] == [8, 16]
    assert all(p["rtl"] == {"samples": 3, "seed": 0} for p in points)
    assert set(arch_for(points[0]).units.lanes().values()) == {8}
    assert arch_for(points[1]).units == spec.bases[0].arch.units
    plain = sweep_from_dict(sweep(base=[GEMMINI]))
    assert all("rtl" not in p and p["unit_lanes"] is None for _, p in plain.points)
