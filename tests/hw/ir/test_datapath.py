"""The datapath description both emitters read: complete, consistent with the plans, and the
one place the generator and the lowering take their structure from."""

import pytest

from hw.front.fusion import FusionError, plan_fused
from hw.front.plan import plan_array
from hw.front.spec import load_specs, spec_from_dict
from hw.ir.datapath import Forward, Read, describe_datapath
from hw.ir.lower import lower, lower_array

from ..front.test_spec import gemm

EXAMPLES = ["gemm_os", "gemm_ws", "gemm_is", "gemm_multicast", "batched_gemm", "conv2d",
            "gemm_spatial_reduction", "gemm_fused", "linear_attention_chain"]


def _plans(name):
    return plan_fused(load_specs(f"examples/{name}.yaml"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_fu_fed_in_every_mode_it_runs(name):
    plans = _plans(name)
    desc = describe_datapath(plans)
    for role, x in enumerate(desc.operands):
        for i, plan in enumerate(plans):
            fed = {f for f, by_mode in x.sources.items() for j, _ in by_mode if j == i}
            assert fed == set(plan.fus), (role, i)
        for f, by_mode in x.sources.items():
            for i, src in by_mode:
                if isinstance(src, Read):
                    assert desc.layout.banks[src.bank][0] == role      # a bank of this role
                else:
                    assert isinstance(src, Forward) and src.delay >= 0
                    assert src.parent in plans[i].fus and src.parent != f


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_output_stream_written_once(name):
    plans = _plans(name)
    desc = describe_datapath(plans)
    seen = [(w.mode, w.stream) for ws in desc.writers.values() for w in ws]
    expected = [(i, s) for i, p in enumerate(plans) for s in p.streams
                if s.tensor == p.output.tensor.name]
    assert sorted(seen, key=repr) == sorted(expected, key=repr)
    assert all(desc.layout.banks[b][0] == 2 for b in desc.writers)


@pytest.mark.parametrize("name", EXAMPLES)
def test_partial_sums_follow_the_reduction(name):
    plans = _plans(name)
    for f, fu in describe_datapath(plans).fus.items():
        for i, src in fu.psum:
            vector = plans[i].output.vector
            if src == "acc":
                assert vector.kind == "stationary" and any(j == i for j, _ in fu.enable)
            else:
                up, d_time = src
                assert d_time == vector.d_time
                assert tuple(a + d for a, d in zip(up, vector.d_space, strict=True)) == f


@pytest.mark.parametrize("name", EXAMPLES)
def test_lowering_reads_the_description(name):
    """The lowered graph has one mul per described FU and one write-back register per
    described output bank: the lowering builds what the description says, nothing else."""
    desc = describe_datapath(_plans(name))
    graph = lower(desc).graph
    muls = sorted(n.name for n in graph if n.kind == "mul")
    assert muls == sorted("mul_" + "_".join(map(str, f)) for f in desc.fus)
    wbs = sorted(n.name for n in graph if n.name.startswith("wb_b"))
    assert wbs == sorted(f"wb_b{b}" for b in desc.writers)


def test_errors():
    with pytest.raises(ValueError, match="at least one plan"):
        describe_datapath([])
    plan = plan_array(load_specs("examples/gemm_os.yaml")[0])
    with pytest.raises(TypeError, match=r"pass \[plan\]"):
        lower_array(plan)
    small = plan_array(spec_from_dict(gemm(array=[2, 2], **{"dataflow.tile": {"i": 2, "j": 2}})))
    with pytest.raises(FusionError, match="cannot share an array"):
        describe_datapath([plan, small])
