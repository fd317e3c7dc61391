"""Designs emitted from the back end's optimized graph: bit-exact in every mode, reported
faithfully; the back end's options and errors."""

import subprocess
import sys

import numpy as np
import pytest

from hw.check.report import check_against_netlist, design_report
from hw.front.plan import plan_array
from hw.front.spec import load_spec, load_specs
from hw.ir.backend import BackendOptions, optimize_datapath
from hw.ir.lower import lower_array
from hw.ir.pipeline import asap_pipeline
from hw.rtl.emit import emit_design
from sim.design import simulate_design

#: example -> the tightest stage budget its register loops allow (accumulator loop: mux, add,
#: enable mux; fused arrays add the mode mux)
SINGLE = {"gemm_os": 1.0, "gemm_ws": 1.0, "gemm_is": 1.0, "gemm_multicast": 1.0,
          "conv2d": 1.0}


class TestBackendOptions:
    @pytest.mark.parametrize("kwargs, match", [
        ({"stage_budget": 0}, "stage_budget must be a positive number"),
        ({"stage_budget": float("inf")}, "stage_budget must be a positive number"),
        ({"stage_budget": True}, "stage_budget must be a positive number"),
        ({"max_fanout": 1}, "max_fanout must be an int >= 2"),
        ({"solver": "gurobi"}, "solver must be 'highs' or 'cbc'"),
    ])
    def test_rejects(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            BackendOptions(**kwargs)


class TestOptimizeDatapath:
    def test_passes_and_figures(self):
        lowered = lower_array([plan_array(load_spec("examples/gemm_os.yaml"))])
        opt = optimize_datapath(lowered, BackendOptions(stage_budget=1.0, max_fanout=4))
        st = opt.stats
        assert list(st) == ["lowered", "constants_folded", "reduction_trees", "fanout_split",
                            "pipelined"]
        assert st["lowered"]["longest_path"] > 1.0 >= opt.graph.longest_path()[0]
        assert opt.latency == st["pipelined"]["latency"] > 0
        added = opt.graph.register_bits() - st["fanout_split"]["register_bits"]
        assert added == st["pipelined"]["inserted_register_bits"] == opt.pipeline.register_bits
        assert max(len(opt.graph.out_edges(n)) for n in opt.graph.nodes) <= 4

    def test_lp_beats_asap_on_the_same_graph(self):
        lowered = lower_array([plan_array(load_spec("examples/gemm_ws.yaml"))])
        opt = optimize_datapath(lowered, BackendOptions(stage_budget=1.0))
        before = optimize_datapath(lowered, BackendOptions()).graph
        assert opt.pipeline.register_bits <= asap_pipeline(before, 1.0).register_bits

    def test_fixed_mode_removes_other_dataflows(self):
        plans = [plan_array(s) for s in load_specs("examples/gemm_fused.yaml")]
        lowered = lower_array(plans)
        full = optimize_datapath(lowered, BackendOptions()).graph
        modes = {n: int(n == "mode_0") for n in lowered.controls if n.startswith("mode_")}
        only_os = optimize_datapath(lowered, BackendOptions(), modes)
        assert len(only_os.graph.nodes) < len(full.nodes)
        assert not [n for n in only_os.graph.nodes if n.startswith("mode_")]

    def test_reduction_trees_on_a_spatial_reduction(self):
        """Row-wise combinational partial sums: constant restarts fold away, then the adder
        chains become trees (8 FUs: 7 adds in series -> 3 levels)."""
        lowered = lower_array([plan_array(load_spec("examples/gemm_spatial_reduction.yaml"))])
        st = optimize_datapath(lowered, BackendOptions()).stats
        assert st["constants_folded"]["longest_path"] < st["lowered"]["longest_path"]
        assert st["reduction_trees"]["longest_path"] <= \
            st["constants_folded"]["longest_path"] - 2.0
        run = simulate_design([load_spec("examples/gemm_spatial_reduction.yaml")], seed=2,
                              engine="pysim", backend=BackendOptions())
        assert run.bit_exact and run.cycles == run.expected_cycles

    def test_infeasible_budget(self):
        lowered = lower_array([plan_array(load_spec("examples/gemm_os.yaml"))])
        with pytest.raises(ValueError, match="infeasible stage budget: node mul_"):
            optimize_datapath(lowered, BackendOptions(stage_budget=0.5))
        fused = lower_array([plan_array(s) for s in load_specs("examples/gemm_fused.yaml")])
        with pytest.raises(ValueError, match="inside a register feedback loop"):
            optimize_datapath(fused, BackendOptions(stage_budget=1.0))   # + the mode mux


class TestGraphEmittedDesigns:
    @pytest.mark.parametrize("name", sorted(SINGLE))
    @pytest.mark.parametrize("pipelined", [False, True])
    def test_bit_exact(self, name, pipelined):
        spec = load_spec(f"examples/{name}.yaml")
        opts = BackendOptions(stage_budget=SINGLE[name] if pipelined else None)
        run = simulate_design([spec], seed=5, engine="pysim", backend=opts)
        np.testing.assert_array_equal(run.output, run.expected)
        plain = simulate_design([spec], seed=5, engine="pysim")
        assert run.cycles == run.expected_cycles
        assert (run.cycles > plain.cycles) == pipelined    # the pipeline's latency, no more

    @pytest.mark.parametrize("mode", [0, 1, 2])
    def test_fused_every_mode(self, mode):
        specs = load_specs("examples/gemm_fused.yaml")
        opts = BackendOptions(stage_budget=1.25)       # the mode mux joins the acc loop
        run = simulate_design(specs, seed=mode, engine="pysim", backend=opts, mode=mode)
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles

    @pytest.mark.parametrize("name", ["gemm_os", "gemm_ws"])
    def test_report_matches_netlist(self, name):
        (plan,), top, v = emit_design([load_spec(f"examples/{name}.yaml")],
                                      backend=BackendOptions(stage_budget=1.0))
        report = design_report(top)
        check_against_netlist(report, v)
        assert report["registers"]["by_purpose"]["pipeline"] == \
            report["backend"]["passes"]["pipelined"]["inserted_register_bits"]
        assert report["cycles"]["per_problem"] == plan.run_cycles + top.latency
        assert report["cycles"]["datapath_latency"] == top.latency > 0

    def test_deterministic_across_processes(self):
        code = ("import hashlib; from hw.front.spec import load_spec; from hw.rtl.emit import "
                "emit_design; from hw.ir.backend import BackendOptions; print(hashlib.sha256("
                "emit_design([load_spec('examples/gemm_ws.yaml')], backend=BackendOptions("
                "stage_budget=1.0, max_fanout=3)).verilog.encode()).hexdigest())")
        runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True).stdout.strip() for _ in range(2)}
        assert len(runs) == 1 and len(runs.pop()) == 64
