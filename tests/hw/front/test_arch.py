"""Architecture specs: the shipped architectures, every field checked, every dataflow
buildable, errors that name the field, the value and the file."""

import copy
from pathlib import Path

import pytest
import yaml

from hw.front.arch import ArchSpec, MemorySpec, arch_from_dict, load_arch
from hw.front.plan import plan_array
from hw.front.spec_model import SpecError

ARCHS = sorted(p.stem for p in Path("examples/arch").glob("*.yaml"))


def _dict(name="gemmini_like"):
    with open(f"examples/arch/{name}.yaml") as f:
        return yaml.safe_load(f)


def _with(path, value, name="gemmini_like"):
    d = copy.deepcopy(_dict(name))
    node, keys = d, path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return d


_DELETE = object()


def test_shipped_architectures():
    assert ARCHS == ["gemmini_like", "lego_fused"]
    gemmini, lego = (load_arch(f"examples/arch/{n}.yaml") for n in ARCHS)
    for arch in (gemmini, lego):        # matched resources: 256 MACs, 256 KiB, 16 GB/s
        assert arch.pes == 256 and arch.dram_gbytes_per_s == 16.0
        assert arch.scratchpad == MemorySpec(256 * 1024, 4, 16)
        assert arch.scratchpad.rows_per_bank == 4096
        assert arch.accumulator.capacity_bytes == 64 * 1024
        assert arch.accumulator.banks * arch.accumulator.rows_per_bank == 1024
    assert [d.name for d in gemmini.dataflows] == ["output_stationary", "weight_stationary"]
    assert gemmini.pad_to == 16 and lego.pad_to == 1
    assert {d.name for d in lego.dataflows} == {"output_stationary", "weight_stationary",
                                                 "input_stationary", "spatial_reduction"}


@pytest.mark.parametrize("name", ARCHS)
def test_every_dataflow_runs_a_full_array_tile(name):
    arch = load_arch(f"examples/arch/{name}.yaml")
    for d in arch.dataflows:
        spatial = arch.spatial_extents(d.name)
        assert sorted(e for e in spatial if e) == [16, 16]      # two dims span the array
        tile = tuple(e or 5 for e in spatial)
        plan = plan_array(arch.tile_spec(d.name, tile))
        assert len(plan.fus) == 256                               # every FU used
        assert plan.spec.op.extents == tile


def test_spatial_reduction_reduces_in_space():
    arch = load_arch("examples/arch/lego_fused.yaml")
    plan = arch.probe_plan("spatial_reduction")
    assert plan.output.vector.d_time == 0 and any(plan.output.vector.d_space)


def test_dataflow_lookup():
    arch = load_arch("examples/arch/gemmini_like.yaml")
    with pytest.raises(SpecError, match=r"no dataflow 'output_stationay' .*did you mean "
                                        r"'output_stationary'"):
        arch.dataflow("output_stationay")


@pytest.mark.parametrize("path, value, message", [
    ("scratchpad.banks", 0, r"scratchpad: banks must be a positive integer, got 0"),
    ("scratchpad.row_bytes", 24, r"scratchpad: capacity 262144 B is not a whole number of "
                                 r"4 banks of 24-byte rows"),
    ("scratchpad.row_bytes", 8, r"a row of 8 bytes holds fewer than 16 8-bit operands"),
    ("scratchpad.size", 1, r"scratchpad.size: unknown key 'size'"),
    ("dram.bytes_per_cycle", 0, r"dram.bytes_per_cycle must be a positive integer, got 0"),
    ("dram.latency_cycles", -1, r"dram.latency_cycles must be an integer >= 0, got -1"),
    ("types.C", "uint32", r"unsigned output|unsigned"),
    ("types.A", "int99", r"types.A"),
    ("array", [16], r"array must be two positive sizes"),
    ("array", [16, True], r"array\[1\] must be a positive integer, got True"),
    ("clock_mhz", "fast", r"clock_mhz must be a positive number, got 'fast'"),
    ("pad_to", 0, r"pad_to must be a positive integer, got 0"),
    ("dataflow", [], r"dataflow: unknown key 'dataflow'; did you mean 'dataflows'"),
    ("dataflows.0.space", ["i", "i"], r"dataflow 'output_stationary'"),
    ("dataflows.0.time", "i + j + k + 1", r"dataflows\[0\].time: constant offsets"),
    ("dataflows.1.name", "output_stationary", r"distinct names"),
    ("dataflows.0.spcae", ["i", "j"], r"did you mean 'space'"),
    ("scratchpad.banks", _DELETE, r"scratchpad: missing 'banks'"),
])
def test_bad_fields(path, value, message):
    with pytest.raises(SpecError, match=message):
        arch_from_dict(_with(path, value))


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narray: [16, 16\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_arch(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text(Path("examples/arch/gemmini_like.yaml").read_text() + "pad_to: 1\n")
    with pytest.raises(SpecError, match=r"duplicate key 'pad_to'"):
        load_arch(twice)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(_with("dram.bytes_per_cycle", 0)))
    with pytest.raises(SpecError, match=r"^.*wrong.yaml: dram.bytes_per_cycle"):
        load_arch(wrong)
    with pytest.raises(SpecError, match=r"cannot read architecture"):
        load_arch(tmp_path / "missing.yaml")


def test_frozen_and_valid_on_construction():
    arch = load_arch("examples/arch/gemmini_like.yaml")
    with pytest.raises(AttributeError):
        arch.pad_to = 2
    from dataclasses import replace

    with pytest.raises(SpecError, match="at least one dataflow"):
        replace(arch, dataflows=())
    assert isinstance(replace(arch, pad_to=8), ArchSpec)
