"""``flows.e2e_host``: the e2e run's operators left in torch costed on the accelerator's host
(the mapper's ``host`` candidate), the accelerator's calls never among them, the report's
``host_cycles`` / ``total_cycles``; fast (reference engine, no GPU run)."""

from __future__ import annotations

import functools
import re
from collections import Counter

import pytest

import flows.e2e as e2e
from flows.e2e_host import HostRecord, check_coverage, host_kinds_table, host_summary, placed_ops
from hw.front.arch import load_arch
from mapping.energy import dram_pj_per_byte, fp_op_pj
from mapping.host_cost import host_op_cost
from mapping.ir import Norm
from mapping.mapper import map_op

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
_ARCHS = {"lego_fused": FUSED, "gemmini_like": GEMMINI}
_KINDS = {   # (costed kind/what expected on the host, uncosted kinds expected) on lego_fused
    "tiny-llama3-8b-duo": ({"norm/rms", "embedding", "elementwise/rope", "elementwise/gate",
                            "kv_cache_write", "elementwise/add"}, set()),
    "tiny-sana-0.6b": ({"norm/layer", "elementwise/modulate", "elementwise/residual",
                        "elementwise/gate", "elementwise/silu", "conv2d/depthwise"}, set()),
    "tiny-flux1-dev": ({"norm/layer", "norm/rms", "elementwise/rope", "elementwise/gelu",
                        "elementwise/quantize", "elementwise/modulate",
                        "linear/group_rescale"}, set()),
}


@functools.cache
def _run(name: str, arch: str) -> e2e.E2ERun:
    return e2e.run_e2e(name, _ARCHS[arch], engine="ref", gpu=False)


def _twin(name: str):
    """The twin as run_e2e prepares it (float32, its e2e options)."""
    import torch

    from mapping.torch_models import E2E_TWIN_OPTIONS, TORCH_TWINS

    model, inputs = TORCH_TWINS[name](**E2E_TWIN_OPTIONS.get(name, {}))
    model = model.float().eval()
    for mod in model.modules():
        if isinstance(getattr(mod, "dtype", None), torch.dtype):
            mod.dtype = torch.float32
    return model, tuple(x.float() if torch.is_tensor(x) and x.is_floating_point() else x
                        for x in inputs)


def _call(name: str) -> tuple[str, int]:
    """(module path, call) of a record's name ``<path>#<call>...``."""
    path, _, rest = name.partition("#")
    return path, int(re.match(r"\d+", rest).group())


def _shape(op: HostRecord) -> tuple:
    return op.kind, op.what, op.elements, op.macs, op.dram_bytes


def _label(op: HostRecord) -> str:
    return f"{op.kind}/{op.what}" if op.what else op.kind


@pytest.mark.parametrize("name", sorted(_KINDS))
def test_host_ops_of_each_twin(name):
    run = _run(name, "lego_fused")
    costed, uncosted = _KINDS[name]
    assert run.passed and run.host_ops
    assert costed <= {_label(op) for op in run.host_ops if op.costed}
    assert {op.kind for op in run.host_ops if not op.costed} == uncosted
    for op in run.host_ops:
        # a contraction is uncosted, but for a depthwise conv (the host's vector work)
        assert op.costed == (op.macs == 0 or op.what == "depthwise")
        assert (op.energy_pj is None) == (op.cycles is None)
        assert op.costed or op.note.startswith(f"no host cost function: {op.kind}, ")
        assert not op.costed or (op.cycles >= 1 and op.energy_pj > 0 and op.bound)
    report = run.report()
    assert report["host_cycles"] == sum(op.cycles for op in run.host_ops if op.costed) > 0
    assert report["host_cycles"] == run.host_cycles and report["host_ops"] == len(run.host_ops)
    assert report["total_cycles"] == report["accel_cycles"] + report["host_cycles"]
    assert report["accel_cycles"] == sum(op.model_cycles for op in run.ops)
    assert report["host_uncosted"] == dict(sorted(Counter(
        op.kind for op in run.host_ops if not op.costed).items()))
    assert f"{report['host_cycles']} cycles" in host_summary(run)
    assert host_kinds_table(run).splitlines()[0].startswith("host operator")


def test_a_norm_costs_what_host_cost_says():
    """RMSNorm of the decode token (1 x 64, fp32 weight): the run's record equals
    mapping.host_cost's and the mapper's cost of the same operator, and the arithmetic."""
    run = _run("tiny-llama3-8b-duo", "lego_fused")
    rec = next(op for op in run.host_ops if op.name == "layers.0.attn_norm#1")
    norm = Norm("attn_norm", "rms", 1, 64, "fp32")
    cost = host_op_cost(FUSED, norm)
    choice = map_op(FUSED, norm)
    assert choice.label == "host" and choice.cycles == cost.cycles
    assert (rec.kind, rec.what, rec.elements, rec.macs) == ("norm", "rms", 64, 0)
    assert (rec.cycles, rec.energy_pj, rec.dram_bytes) == (cost.cycles, cost.energy_pj,
                                                          cost.dram_bytes)
    # 64 x (3 + 1 affine) FP32 ops on 16 lanes = 16 cycles; 3 x 256 B (weight, in, out)
    # over the 16 B/cycle DRAM port = 48 cycles: memory bound
    assert (rec.fp32_ops, rec.dram_bytes, rec.cycles, rec.bound) == (256, 768, 48, "memory")
    assert rec.energy_pj == pytest.approx(256 * fp_op_pj(32) + 768 * dram_pj_per_byte())


@pytest.mark.parametrize("name", sorted(_KINDS))
def test_accelerator_calls_never_on_the_host(name):
    """No host record is a call the run put on the accelerator (an nn.Linear's above all);
    every operator of the import is the accelerator's or the host's."""
    import torch

    from mapping.fx_import import import_module

    run = _run(name, "lego_fused")
    model, inputs = _twin(name)
    linears = {p for p, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    accel_calls = {_call(op.name) for op in run.ops}
    assert linears and not {_call(op.name) for op in run.host_ops if op.macs} & accel_calls
    assert not any(op.name.split("#")[0] in linears for op in run.host_ops)
    assert {op.name.split("#")[0] for op in run.ops} >= linears
    placed = placed_ops(model, inputs, FUSED)
    # the host steps of an accelerator call's mapper choice (W4A16's group rescale) are
    # records of that call, named after it
    steps = [op for op in run.host_ops if op.what == "group_rescale"]
    assert {op.name.rsplit(".", 1)[0] for op in steps} <= {p.name for p in placed if p.accel}
    assert [p.name for p in placed if not p.accel] == [op.name for op in run.host_ops
                                                       if op not in steps]
    graph = import_module(model, inputs)
    assert len(placed) == sum(stage.repeat for stage, _ in graph.walk())


def test_coverage_checked_against_the_records():
    run = _run("tiny-llama3-8b-duo", "lego_fused")
    placed = placed_ops(*_twin("tiny-llama3-8b-duo"), FUSED)
    check_coverage(placed, run.ops)
    extra = [*run.ops, run.ops[0].__class__(**{**run.ops[0].__dict__, "name": "layers.0.qkv#2"})]
    with pytest.raises(ValueError, match=r"import only none; records only layers.0.qkv#2"):
        check_coverage(placed, extra)
    with pytest.raises(ValueError, match=r"import only layers.0.qkv#1"):
        check_coverage(placed, [op for op in run.ops if op.name != "layers.0.qkv#1"])


@pytest.mark.parametrize("name, leaf", [("tiny-llama3-8b-duo", "attn"),
                                        ("tiny-flux1-dev", "linear1")])
def test_coverage_change_moves_ops_to_the_host(name, leaf):
    """On gemmini_like DuoAttention and SVDQuant stay in torch: their contractions join the
    host's records (uncosted: no host cost function), the rest of the host's stays as is."""
    fused, gemmini = _run(name, "lego_fused"), _run(name, "gemmini_like")
    before = {op.name: op for op in fused.host_ops}
    after = {op.name: op for op in gemmini.host_ops}
    gained = [after[n] for n in after.keys() - before.keys()]
    assert before.keys() < after.keys()
    assert all(_shape(after[n]) == _shape(before[n]) for n in before)
    assert gained and all(not op.costed and op.macs > 0 for op in gained)
    assert any(f".{leaf}#" in op.name for op in gained)
    assert not any(f".{leaf}#" in op.name for op in gemmini.ops)
    assert gemmini.report()["host_uncosted"] != fused.report()["host_uncosted"]


def test_without_host_costing():
    run = e2e.run_e2e("tiny-llama2-7b-duo", FUSED, engine="ref", gpu=False, host=False)
    report = run.report()
    assert run.host_ops == () and report["host_cycles"] == 0 and report["host_uncosted"] == {}
    assert report["total_cycles"] == report["accel_cycles"]


def test_report_has_the_host_table(tmp_path):
    from flows.e2e_report import write_report
    from mapping.mapper import map_model
    from mapping.zoo import model

    run = _run("tiny-llama3-8b-duo", "lego_fused")
    write_report(run, map_model(model(run.model), arch=FUSED), tmp_path)
    md = (tmp_path / f"{run.model}_e2e.md").read_text()
    section = md[md.index("## Host operators (costed, run in torch float32)\n"):
                 md.index("## The mapper's schedule")].splitlines()
    assert f"total {run.total_cycles} = accelerator" in section[2]
    rows = [line for line in section if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(run.host_ops)
    for op, row in zip(run.host_ops, rows, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == op.name and cells[7] == str(op.cycles)
    page = (tmp_path / f"{run.model}_e2e.html").read_text()
    assert "<h2>Host operators (costed, run in torch float32)</h2>" in page
    assert "<td>layers.0.attn_norm#1</td>" in page
