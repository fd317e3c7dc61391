"""The sweep's ``area`` measure (:mod:`flows.sweep_area`): gemmini_like's family (16-byte
beat) measured in Yosys once (two variants: it has no laned units; about two minutes of one
core), cached and reused, and the estimates it gives the points of a sweep."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import flows.accel_engines
import hw.check.accel_area
from flows import sweep_area
from flows.sweep_eval import arch_for, run_point
from flows.sweep_spec import sweep_from_dict
from hw.check.area_model import SRAM_UM2_PER_BIT
from hw.front.arch import load_arch

GEMMINI = "examples/arch/gemmini_like.yaml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh cache for this module: the family is measured by the first test using it."""
    folder = tmp_path_factory.mktemp("area-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEGO_CACHE_DIR", str(folder))
        sweep_area.area_model.cache_clear()
        yield folder
        sweep_area.area_model.cache_clear()


def _arch(edge: int, kib: int = 256):
    return arch_for({"base": GEMMINI, "array": f"{edge}x{edge}", "types": "int8,int8,int32",
                     "dataflows": "output_stationary+weight_stationary",
                     "scratchpad_kib": kib, "accumulator_kib": 64,
                     "dram_bytes_per_cycle": 16, "unit_lanes": None})


def test_area_outputs_and_scaling(cache):
    out = sweep_area.area_outputs(_arch(16))
    files = sorted(p.name for p in (cache / "accel-area").glob("*.json"))
    assert len(files) == 1 and files[0].startswith("gemmini_like-")
    variants = json.loads((cache / "accel-area" / files[0]).read_text())["variants"]
    assert [(v["edge"], v["lanes"]) for v in variants] == [(2, 1), (4, 1), (4, 2)]
    assert variants[1]["parts"] == variants[2]["parts"]         # no lanes: measured once
    assert {"exec", "dma", "dispatcher"} <= set(out["area_parts"])
    assert out["area"] == pytest.approx(out["area_logic_mm2"] + out["area_sram_mm2"], abs=2e-6)
    spad, acc = 256 * 1024 * 8, 64 * 1024 * 8
    others = out["sram_bits"] - spad - acc
    assert 0 < others < 20_000                                  # the DMA response FIFO
    assert out["area_sram_mm2"] == pytest.approx(out["sram_bits"] * SRAM_UM2_PER_BIT / 1e6,
                                                 abs=1e-6)
    small, tiny = (sweep_area.area_outputs(_arch(e)) for e in (8, 4))
    assert tiny["area"] < small["area"] < out["area"]
    assert 3.5 < out["area_parts"]["exec"] / small["area_parts"]["exec"] < 4.0   # x4 PEs
    more = sweep_area.area_outputs(_arch(16, kib=1024))
    assert more["area_logic_mm2"] == out["area_logic_mm2"]     # capacity: SRAM bits only
    assert more["area_sram_mm2"] - out["area_sram_mm2"] == pytest.approx(
        768 * 1024 * 8 * SRAM_UM2_PER_BIT / 1e6, abs=2e-6)


def test_cached_family_is_reused_and_another_is_measured(cache, monkeypatch):
    sweep_area.area_outputs(_arch(16))                          # measured (or cached) here

    def refuse(*a, **k):
        raise RuntimeError("measured again")

    monkeypatch.setattr(hw.check.accel_area, "measure_parts", refuse)
    sweep_area.area_model.cache_clear()
    assert sweep_area.area_outputs(_arch(8))["area"] > 0        # the file, no Yosys
    one_flow = replace(_arch(16), dataflows=_arch(16).dataflows[:1])
    with pytest.raises(RuntimeError, match="measured again"):   # another family
        sweep_area.area_outputs(one_flow)
    assert not list((cache / "accel-area").glob("*.tmp*"))


def test_an_edit_that_keeps_the_rtl_keeps_the_measurement(cache, monkeypatch):
    """Another generator digest (as after editing a golden model) re-emits the variants;
    their Verilog is unchanged, so the cached measurement serves."""
    sweep_area.area_outputs(_arch(16))
    digest = flows.accel_engines.design_key
    monkeypatch.setattr(flows.accel_engines, "design_key", lambda a: f"edited{digest(a)}")
    monkeypatch.setattr(hw.check.accel_area, "measure_parts",
                        lambda *a, **k: pytest.fail("measured again"))
    sweep_area.area_model.cache_clear()
    assert sweep_area.area_outputs(_arch(8))["area"] > 0
    assert list((cache / "accel-verilog").glob("*-edited*.v"))


def test_sweep_point_with_area(cache):
    spec = sweep_from_dict({"name": "a", "models": ["tiny-llama3-8b-duo"], "base": GEMMINI,
                            "axes": {"array": ["8x8", "16x16"]}, "measure": ["cost", "area"]})
    rows = [run_point(pid, inputs) for pid, inputs in spec.points]
    assert [r[1] for r in rows] == ["done", "done"]
    areas = [r[2]["area"] for r in rows]
    assert 0 < areas[0] < areas[1]
    assert rows[1][2]["area"] == sweep_area.area_outputs(load_arch(GEMMINI))["area"]
