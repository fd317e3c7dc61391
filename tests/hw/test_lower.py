import pytest

from hw.emit import to_verilog
from hw.generate import GeneratedArray
from hw.lower import lower_datapath
from hw.pipeline import asap_pipeline, insert_pipeline
from hw.plan import plan_array
from hw.spec import load_spec

EXAMPLES = ["gemm_os", "gemm_ws", "gemm_is", "gemm_multicast", "conv2d"]


class TestLowerDatapath:
    @pytest.mark.parametrize("name", EXAMPLES)
    def test_registers_match_the_generated_rtl(self, name):
        """Forwarding, partial-sum and accumulator registers are the ones the RTL has."""
        plan = plan_array(load_spec(f"examples/{name}.yaml"))
        graph = lower_datapath(plan)
        top = GeneratedArray(plan)
        to_verilog(top, name)
        rtl = top.register_bits
        expected = (rtl["operand forwarding"] + rtl["partial-sum forwarding"]
                    + rtl["accumulators"])
        writers = sum(1 for s in plan.streams if s.tensor == plan.output.tensor.name)
        wb = writers * plan.output.tensor.dtype.bits          # one write-back stage per writer
        assert graph.register_bits() == expected + wb

    def test_structure(self):
        plan = plan_array(load_spec("examples/gemm_os.yaml"))
        graph = lower_datapath(plan)
        kinds = [n.kind for n in graph.nodes.values()]
        assert kinds.count("mul") == kinds.count("add") == len(plan.fus) == 16
        assert kinds.count("mem_read") == 8 and kinds.count("output") == 16
        # critical path: bank read 0.5 + multiply 1.0 + add 0.5 (the mux is on the acc side)
        assert graph.longest_path()[0] == pytest.approx(2.0)

    @pytest.mark.parametrize("name", ["gemm_os", "gemm_ws"])
    def test_lp_never_worse_than_asap(self, name):
        graph = lower_datapath(plan_array(load_spec(f"examples/{name}.yaml")))
        lp, asap = insert_pipeline(graph, 1.0), asap_pipeline(graph, 1.0)
        assert lp.register_bits <= asap.register_bits
        assert lp.latency == asap.latency
