"""The sweep's ``rtl`` measure (:mod:`flows.sweep_rtl`): a model's twin, its lowered steps
drawn by a seed and run on the generated accelerator (the fast engine; the Verilator build of
gemmini_like is the one :mod:`tests.flows.test_map_rtl` uses, cached), a wrong DRAM or cycle
count caught and the point recorded as failed."""

from __future__ import annotations

from dataclasses import replace

import pytest

import mapping.lower
from flows.sweep_eval import arch_for, run_point
from flows.sweep_rtl import RtlMismatch, rtl_outputs, twin_label
from flows.sweep_spec import sweep_from_dict
from hw.front.arch import load_arch

GEMMINI = "examples/arch/gemmini_like.yaml"
MODEL = "tiny-llama3-8b-duo phase=decode"


@pytest.mark.parametrize("model, twin", [
    ("llama3-8b-duo context=1024 phase=decode", "tiny-llama3-8b-duo phase=decode"),
    ("flux1-dev quant=svdquant resolution=512", "tiny-flux1-dev quant=svdquant"),
    ("llama2-7b-duo full=true retrieval=0.5", "tiny-llama2-7b-duo full=true retrieval=0.5"),
    ("vila-u", "tiny-vila-u"),
    ("tiny-sana-0.6b resolution=64", "tiny-sana-0.6b resolution=64"),
    ("examples/models/tiny_mlp.py:build", "examples/models/tiny_mlp.py:build"),
])
def test_twin_label(model, twin):
    assert twin_label(model) == twin


def test_sampled_steps_run_on_rtl():
    """Two steps drawn by the seed run bit- and cycle-exact; the same seed draws the same
    steps, another seed (here) others."""
    arch = load_arch(GEMMINI)
    out = rtl_outputs(arch, MODEL, samples=2, seed=0)["rtl"]
    assert out["twin"] == MODEL and out["steps"] > 4
    assert len(out["checked"]) == 2 and out["reference_only"] == [] and out["cycles"] > 0
    assert rtl_outputs(arch, MODEL, samples=2, seed=0)["rtl"] == out
    everything = rtl_outputs(arch, MODEL, samples=100, seed=0)["rtl"]
    assert len(everything["checked"]) == everything["steps"] == out["steps"]


@pytest.mark.parametrize("corrupt, message", [
    (lambda s: replace(s, dram_out=bytes(len(s.dram_out))), "RTL DRAM differs"),
    (lambda s: replace(s, run_cycles=s.run_cycles + 1), "RTL took"),
    (lambda s: replace(s, cycles=s.cycles + 1), "!= the mapper's"),
])
def test_mismatches_are_caught(monkeypatch, corrupt, message):
    """A lowering whose expected DRAM or cycles are wrong (as a generator or cost model bug
    would make them) fails the measure, and the sweep point with it."""
    lower = mapping.lower.lower_model
    monkeypatch.setattr(mapping.lower, "lower_model",
                        lambda *a, **k: [corrupt(s) for s in lower(*a, **k)])
    with pytest.raises(RtlMismatch, match=message):
        rtl_outputs(load_arch(GEMMINI), MODEL, samples=1, seed=0)
    spec = sweep_from_dict({"name": "r", "models": [MODEL], "base": GEMMINI,
                            "measure": ["cost", "rtl"], "rtl": {"samples": 1}})
    (pid, inputs), = spec.points
    _, status, outputs, error, _ = run_point(pid, inputs)
    assert (status, outputs) == ("failed", None)
    assert error.startswith("RtlMismatch: step ") and message.split()[0] in error


def test_point_with_rtl_outputs():
    spec = sweep_from_dict({"name": "r", "models": [MODEL], "base": GEMMINI,
                            "measure": ["cost", "rtl"]})
    (pid, inputs), = spec.points
    assert arch_for(inputs) == load_arch(GEMMINI)        # one Verilator build with test_map_rtl
    _, status, outputs, error, _ = run_point(pid, inputs)
    assert (status, error) == ("done", None)
    assert len(outputs["rtl"]["checked"]) == 2 and outputs["cycles"] > 0


def test_bad_samples():
    with pytest.raises(ValueError, match="rtl samples must be >= 1, got 0"):
        rtl_outputs(load_arch(GEMMINI), MODEL, samples=0, seed=0)
