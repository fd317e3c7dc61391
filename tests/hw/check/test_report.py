"""The design report's timing figures come from hw.cost, each fused mode from its own op."""

from amaranth.hdl import Fragment

from hw.check.report import design_report
from hw.cost import design_cost
from hw.front.fusion import plan_fused
from hw.front.spec import load_specs
from hw.rtl.generate import GeneratedArray


def test_fused_modes_of_different_ops_have_their_own_utilization():
    """Bug 2: the linear-attention chain with 64 tokens in mode 0 (K^T V: 4096 MACs) and 16 in
    mode 1 (Q KV: 1024 MACs) reported mode 1 with mode 0's MACs (over 100%)."""
    specs = load_specs("examples/linear_attention_chain.yaml")
    specs[0] = specs[0].with_extents({"n": 64})
    plans = plan_fused(specs)
    top = GeneratedArray(plans, fu_style="inline")
    Fragment.get(top, None)
    report = design_report(top)
    cost = design_cost(plans)
    modes = report["modes"]
    assert modes[1]["utilization"] == round(1024 / (16 * top.run_cycles(1)), 4)   # was 3.5556
    assert [m["macs"] for m in modes] == [4096, 1024]
    assert [m["utilization"] for m in modes] == [
        round(cost.utilization(i), 4) for i in range(2)]
    assert [m["cycles_per_problem"] for m in modes] == [top.run_cycles(i) for i in range(2)]
    assert all(0 < m["utilization"] <= 1 for m in modes)
    assert report["macs"] == 4096 and report["utilization"] == modes[0]["utilization"]
    assert report["banks"]["total_bits"] == cost.memory_bits
