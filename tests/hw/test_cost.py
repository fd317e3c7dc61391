"""hw.cost against the RTL: cycles measured in Amaranth's simulator, register bits counted while
elaborating and the physical banks, on every example (every mode) and with a back end."""

from math import prod
from pathlib import Path

import pytest
from amaranth.hdl import Fragment

from hw.cost import (
    DesignCost,
    ModeCost,
    accumulates_in_fu,
    design_cost,
    measured_utilization,
    utilization_of,
)
from hw.front.fusion import plan_fused
from hw.front.spec import load_specs
from hw.ir.backend import BackendOptions
from hw.rtl import generate
from hw.rtl.generate import GeneratedArray
from sim.design import simulate_design

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))
RUNS = [(name, mode) for name in EXAMPLES
        for mode in range(len(load_specs(ROOT / "examples" / f"{name}.yaml")))]


def _specs(name):
    return load_specs(ROOT / "examples" / f"{name}.yaml")


def _elaborated(plans, backend=None) -> GeneratedArray:
    top = GeneratedArray(plans, fu_style="inline", backend=backend)
    Fragment.get(top, None)             # elaborates: fills top.register_bits
    return top


def _rtl_memory_bits(top: GeneratedArray) -> int:
    widths = [t.tensor.dtype.bits for t in top.plan.inputs] + [top.plan.output.tensor.dtype.bits]
    return sum(depth * widths[role] for role, depth in top.banks)


def test_examples_cover_every_mode():
    assert len(EXAMPLES) >= 9 and ("gemm_fused", 2) in RUNS
    assert ("linear_attention_chain", 1) in RUNS


@pytest.mark.parametrize("name,mode", RUNS)
def test_cycles_equal_measured(name, mode):
    """Busy cycles measured in Amaranth's simulator = the cost model's, in every mode."""
    specs = _specs(name)
    cost = design_cost(plan_fused(specs))
    run = simulate_design(specs, seed=mode, engine="pysim", mode=mode)
    assert run.bit_exact
    assert run.cycles == run.expected_cycles == cost.cycles(mode)
    m = cost.mode(mode)
    assert m.macs == prod(specs[mode].op.extents) and m.fus == prod(specs[mode].array)
    assert m.utilization == measured_utilization(specs[mode], run.cycles)


@pytest.mark.parametrize("name", EXAMPLES)
def test_registers_and_memory_equal_rtl(name):
    plans = plan_fused(_specs(name))
    top = _elaborated(plans)
    cost = design_cost(plans)
    assert cost.registers == dict(top.register_bits)
    assert cost.memory_bits == _rtl_memory_bits(top)
    assert [cost.cycles(m) for m in range(len(plans))] == \
        [top.run_cycles(m) for m in range(len(plans))]
    assert cost.modes[0].accumulator_read == top.write_shift
    assert cost.used_fus == len({f for p in plans for f in p.fus})


@pytest.mark.parametrize("name,budget", [("gemm_os", 1.0), ("gemm_spatial_reduction", 1.0),
                                         ("linear_attention_chain", 1.5)])
def test_backend_equal_rtl(name, budget):
    """With a pipelined datapath: cycles include its latency and no accumulator read."""
    specs, options = _specs(name), BackendOptions(stage_budget=budget)
    plans = plan_fused(specs)
    top = _elaborated(plans, options)
    cost = design_cost(plans, options)          # lowers and optimizes on its own
    assert cost.mode(0).datapath_latency == top.latency > 0
    assert cost.mode(0).accumulator_read == 0
    assert cost.registers == dict(top.register_bits)
    assert cost.registers["pipeline"] > 0
    for mode in range(len(specs)):
        run = simulate_design(specs, seed=mode, engine="pysim", mode=mode, backend=options)
        assert run.bit_exact and run.cycles == cost.cycles(mode) == top.run_cycles(mode)


def test_each_mode_its_own_op():
    """Fused ops of different sizes: every mode's MACs and utilization are its own."""
    specs = _specs("linear_attention_chain")
    specs[0] = specs[0].with_extents({"n": 64})       # K^T V over 64 tokens: 4x the MACs
    cost = design_cost(plan_fused(specs))
    assert [m.macs for m in cost.modes] == [8 * 8 * 64, 16 * 8 * 8]
    assert all(0 < m.utilization <= 1 for m in cost.modes)
    assert cost.utilization(1) == 1024 / (16 * cost.cycles(1))


def test_accumulator_rule_lives_in_the_pure_layer():
    assert generate.accumulates_in_fu is accumulates_in_fu
    os_plan, ws_plan = plan_fused(_specs("gemm_fused"))[:2]
    assert accumulates_in_fu([os_plan]) and not accumulates_in_fu([ws_plan])
    assert not accumulates_in_fu([os_plan, ws_plan])
    cost = design_cost([os_plan])
    assert cost.mode(0).accumulator_read == 1
    assert cost.cycles() == os_plan.run_cycles + 1


class TestValidation:
    def test_mode_out_of_range(self):
        cost = design_cost(plan_fused(_specs("gemm_os")))
        with pytest.raises(ValueError, match="mode must be in 0..0, got 1"):
            cost.cycles(1)
        with pytest.raises(ValueError, match="got -1"):
            cost.utilization(-1)

    def test_bad_inputs(self):
        plans = plan_fused(_specs("gemm_os"))
        with pytest.raises(ValueError, match="one or more ArrayPlans"):
            design_cost([])
        with pytest.raises(ValueError, match="datapath without backend"):
            design_cost(plans, datapath=(None, None))
        with pytest.raises(ValueError, match="cycles must be a positive int, got 0"):
            utilization_of(10, 4, 0)

    def test_dataclasses_validate(self):
        with pytest.raises(ValueError, match="plan_cycles \\+ datapath_latency"):
            ModeCost(0, "os", 10, 4, 6, 2, 1, 0, 12, 64, 16)
        good = ModeCost(0, "os", 10, 4, 6, 2, 1, 0, 11, 64, 16)
        with pytest.raises(ValueError, match="modes 0..n-1"):
            DesignCost((good, good), 16, ((0, 2, 8),), ())
        with pytest.raises(ValueError, match="used_fus"):
            DesignCost((good,), 17, ((0, 2, 8),), ())
        with pytest.raises(ValueError, match="register_bits"):
            DesignCost((good,), 16, ((0, 2, 8),), (("b", 1), ("a", 2)))
