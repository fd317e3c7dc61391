"""Generated arrays in Verilator (cocotb), bit-exact against golden, cycles as reported.

OS / WS / IS / multicast GEMM on 2x2, 4x4 and 3x5 arrays, int4 and int8, problem extents
that are not multiples of the array. Each design is one Verilator build (cached by hash).
"""

import numpy as np
import pytest

from hw.front.plan import plan_array
from hw.front.spec import spec_from_dict
from sim.design import simulate_design

# name: (space, time, tile for a P x Q array and an M x N x K problem, outer order)
FLOWS = {
    "os": (["i", "j"], "i + j + k", lambda p, q, m, n, k: {"i": p, "j": q, "k": k}, "ijk"),
    "ws": (["k", "j"], "i + j + k", lambda p, q, m, n, k: {"i": m, "j": q, "k": p}, "jki"),
    "is": (["i", "k"], "i + j + k", lambda p, q, m, n, k: {"i": p, "j": n, "k": q}, "ikj"),
    "multicast": (["i", "j"], "k", lambda p, q, m, n, k: {"i": p, "j": q, "k": k}, "ijk"),
}

# (array, problem M x N x K, element type): extents deliberately not multiples of the array.
CASES = [((2, 2), (3, 5, 7), "int4"), ((4, 4), (6, 5, 9), "int8"), ((3, 5), (7, 8, 4), "int4")]


def gemm_spec(flow, array, problem, dtype):
    space, time, tile, order = FLOWS[flow]
    (p, q), (m, n, k) = array, problem
    return spec_from_dict({
        "name": f"gemm_{flow}_{p}x{q}_{dtype}",
        "op": {"dims": {"i": m, "j": n, "k": k}, "tensors": {
            "A": {"index": "i, k", "role": "input", "type": dtype},
            "B": {"index": "k, j", "role": "input", "type": dtype},
            "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
        "array": [p, q],
        "dataflow": {"name": flow, "space": space, "time": time,
                     "tile": tile(p, q, m, n, k), "outer_order": list(order)},
    })


class TestDesignRTL:
    @pytest.mark.parametrize("flow", list(FLOWS))
    @pytest.mark.parametrize("array,problem,dtype", CASES, ids=lambda c: str(c))
    def test_bit_exact(self, flow, array, problem, dtype):
        spec = gemm_spec(flow, array, problem, dtype)
        for seed in (1, 2):                  # one build, two operand sets
            run = simulate_design([spec], seed=seed)
            np.testing.assert_array_equal(run.output, run.expected)
            assert run.cycles == run.expected_cycles

    def test_stationary_accumulates_across_tiles(self):
        """OS with k split into tiles: the accumulator register is read one cycle after its
        last MAC and added to the partial result read back from the output bank."""
        spec = gemm_spec("os", (2, 2), (3, 5, 7), "int4").with_tile({"k": 3})
        plan = plan_array(spec)
        assert plan.accumulates_across_tiles and plan.output.vector.kind == "stationary"
        run = simulate_design([spec], seed=4)
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles == plan.run_cycles + 1

    def test_extremes(self):
        spec = gemm_spec("os", (2, 2), (3, 5, 7), "int4")
        ops = {"A": np.full((3, 7), -8), "B": np.full((7, 5), -8)}
        run = simulate_design([spec], ops)
        assert run.bit_exact and (run.output == 7 * 64).all()


class TestEngines:
    def test_fast_engine_agrees(self):
        spec = gemm_spec("ws", (4, 4), (6, 5, 9), "int8")
        run = simulate_design([spec], seed=3, engine="fast")
        assert run.bit_exact and run.cycles == run.expected_cycles

    def test_fast_engine_wide_signed_extremes(self):
        # int16 x int16 products fill the 32-bit accumulator: sign extension and the signed
        # multiply of the fast build's helpers (sim/verilated_fast.h) at their widest here
        # (K = 7 sums of -32768 * -+9362 come within 65,536 of the int32 limits)
        spec, rng = gemm_spec("is", (2, 2), (3, 5, 7), "int16"), np.random.default_rng(4)
        lo = -(1 << 15)
        for ops in ({"A": np.full((3, 7), lo), "B": np.full((7, 5), -9362)},
                    {"A": np.full((3, 7), lo), "B": np.full((7, 5), 9362)},
                    {"A": rng.integers(lo, -lo, (3, 7)), "B": rng.integers(-9362, 9363, (7, 5))}):
            run = simulate_design([spec], ops, engine="fast")
            assert run.bit_exact and run.cycles == run.expected_cycles

    def test_waves(self):
        spec = gemm_spec("multicast", (2, 2), (3, 5, 7), "int4")
        run = simulate_design([spec], seed=1, waves=True)
        assert run.bit_exact
        assert run.waves is not None and run.waves.stat().st_size > 1000
        assert "$var" in run.waves.read_text()[:50000]

    def test_bad_engine(self):
        with pytest.raises(ValueError, match="engine must be one of"):
            simulate_design([gemm_spec("os", (2, 2), (3, 5, 7), "int4")], engine="icarus")
        with pytest.raises(ValueError, match="waves are recorded by the cocotb engine"):
            simulate_design([gemm_spec("os", (2, 2), (3, 5, 7), "int4")], engine="fast",
                            waves=True)


class TestFusedRTL:
    def test_every_mode_in_verilator(self):
        """One build of the fused OS + WS + IS array; each dataflow selected at run time."""
        from hw.front.spec import load_specs

        specs = load_specs("examples/gemm_fused.yaml")
        for mode in range(len(specs)):
            run = simulate_design(specs, seed=mode, mode=mode)
            np.testing.assert_array_equal(run.output, run.expected)
            assert run.cycles == run.expected_cycles

    def test_every_mode_on_the_fast_engine(self):
        """The fast harness holds the mode port; one (profile-guided on every mode) build."""
        from hw.front.spec import load_specs

        specs = load_specs("examples/gemm_fused.yaml")
        for mode in range(len(specs)):
            run = simulate_design(specs, seed=10 + mode, mode=mode, engine="fast")
            np.testing.assert_array_equal(run.output, run.expected)
            assert run.cycles == run.expected_cycles


class TestDifferentOpsRTL:
    def test_linear_attention_chain_in_verilator(self):
        """K^T V then Q (K^T V) on one array (one build), requantized between the modes."""
        from hw.front.spec import load_specs

        specs = load_specs("examples/linear_attention_chain.yaml")
        rng = np.random.default_rng(9)
        k, v, q = (rng.integers(-128, 128, size=(16, 8)) for _ in range(3))
        kv = simulate_design(specs, {"K": k, "V": v}, mode=0)
        np.testing.assert_array_equal(kv.output, k.T @ v)
        kv8 = np.clip(kv.output >> 10, -128, 127)
        out = simulate_design(specs, {"Q": q, "KV": kv8}, mode=1)
        np.testing.assert_array_equal(out.output, q @ kv8)
        assert kv.cycles == kv.expected_cycles and out.cycles == out.expected_cycles


class TestBackendRTL:
    """Datapaths emitted from the back end's optimized, LP-pipelined graph, in Verilator."""

    def test_fused_pipelined_every_mode(self):
        from hw.front.spec import load_specs
        from hw.ir.backend import BackendOptions

        specs = load_specs("examples/gemm_fused.yaml")
        opts = BackendOptions(stage_budget=1.5, max_fanout=4)
        for mode in range(len(specs)):
            run = simulate_design(specs, seed=10 + mode, mode=mode, backend=opts)
            np.testing.assert_array_equal(run.output, run.expected)
            assert run.cycles == run.expected_cycles

    def test_reduction_trees_and_fanout(self):
        from hw.front.spec import load_spec
        from hw.ir.backend import BackendOptions

        spec = load_spec("examples/gemm_spatial_reduction.yaml")
        run = simulate_design([spec], seed=6, backend=BackendOptions(stage_budget=1.0,
                                                                   max_fanout=4))
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles

    @pytest.mark.parametrize("flow", ["os", "ws"])
    def test_pipelined_single_dataflow(self, flow):
        from hw.ir.backend import BackendOptions

        spec = gemm_spec(flow, (3, 5), (7, 8, 4), "int4")
        run = simulate_design([spec], seed=4, backend=BackendOptions(stage_budget=1.0))
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles
