from amaranth.back import verilog
from amaranth.hdl import ClockDomain

from hw.check.area import synth_stats
from hw.front.mac_spec import MacSpec
from hw.rtl.mac import MacUnit


class TestSynthStats:
    def test_accumulator_flops(self):
        """A stationary int4 FU: exactly its 10 accumulator bits become flip-flops."""
        text = verilog.convert(MacUnit(MacSpec("int4", "int4", acc_bits=10)), name="fu",
                               emit_src=False,
                               missing_domain=lambda n: ClockDomain(n, reset_less=True))
        stats = synth_stats(text, "fu")
        assert stats.flip_flops == 10
        assert stats.cells > stats.flip_flops          # the multiplier and adder as gates
        assert sum(stats.by_type.values()) == stats.cells
