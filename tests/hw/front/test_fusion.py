"""Joint planning of fused dataflows (hw.fusion): shared interconnect, still bit-exact."""

import numpy as np
import pytest

from hw.front.fusion import fused_sources, plan_fused
from hw.front.plan import plan_array
from hw.front.spec import load_specs, specs_from_dict
from sim.design import simulate_design


def _broadcast_specs():
    """C[i, j] += A[i, k] * V[k] on 4x4 under three skews: V is reused along i, j and the
    diagonals, so every FU has several candidate sources and the skews prefer different ones."""
    flow = {"space": ["i", "j"], "tile": {"i": 4, "j": 4, "k": 6}}
    return specs_from_dict({
        "name": "broadcast_fused",
        "op": {"dims": {"i": 4, "j": 4, "k": 6}, "tensors": {
            "A": {"index": "i, k", "role": "input", "type": "int8"},
            "V": {"index": "k", "role": "input", "type": "int8"},
            "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
        "array": [4, 4],
        "dataflows": [{**flow, "name": "even", "time": "i + j + k"},
                      {**flow, "name": "rows", "time": "i + 2 * j + k"},
                      {**flow, "name": "cols", "time": "2 * i + j + k"}]})


def _extra_sources(plans) -> int:
    """Mux inputs beyond the first at every FU input, over all dataflows."""
    return sum(len(s) - 1 for role in fused_sources(plans) for s in role.values())


class TestPlanFused:
    def test_fewer_distinct_sources_than_independent(self):
        specs = _broadcast_specs()
        alone = [plan_array(s) for s in specs]
        joint = plan_fused(specs)
        assert _extra_sources(joint) < _extra_sources(alone)
        assert plan_fused(specs)[0].inputs == joint[0].inputs       # deterministic

    @pytest.mark.parametrize("mode", [0, 1, 2])
    def test_bit_exact_every_mode(self, mode):
        run = simulate_design(_broadcast_specs(), seed=mode, engine="pysim", mode=mode)
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles

    def test_gemm_fused_already_shares_everything(self):
        specs = load_specs("examples/gemm_fused.yaml")
        assert _extra_sources(plan_fused(specs)) == _extra_sources(
            [plan_array(s) for s in specs])

    def test_single_spec(self):
        specs = load_specs("examples/gemm_fused.yaml")[:1]
        assert plan_fused(specs)[0].inputs == plan_array(specs[0]).inputs
