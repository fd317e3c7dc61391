"""The MAC FU against Python integer arithmetic, in Amaranth's simulator (no build needed)."""

import itertools

import pytest
from amaranth.sim import Simulator

from golden.int_types import IntType
from hw.front.mac_spec import MacSpec
from hw.rtl.mac import MacUnit


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class TestMacSpec:
    def test_product_bits(self):
        assert MacSpec("int8", "int8").product_bits == 16
        assert MacSpec("uint4", "uint4", acc_bits=16).product_bits == 9

    def test_acc_too_narrow(self):
        with pytest.raises(ValueError, match="accumulator type must be 16..64 bits wide"):
            MacSpec("int8", "int8", acc_bits=12)

    def test_operand_too_wide(self):
        with pytest.raises(ValueError, match="at most 16 bits"):
            MacSpec("int32", "int8")

    def test_parses_names(self):
        assert MacSpec("uint4", "int8").a_type == IntType(4, signed=False)


class TestMacUnit:
    @pytest.mark.parametrize("a_type,b_type", [("int4", "int4"), ("uint4", "int4"),
                                               ("int4", "uint4"), ("uint4", "uint4")])
    def test_stationary_exhaustive_int4(self, a_type, b_type):
        """Every int4 operand pair, accumulated with first/en as an array drives them."""
        spec = MacSpec(a_type, b_type, acc_bits=12)
        dut = MacUnit(spec, stationary=True)
        pairs = list(itertools.product(range(spec.a_type.min, spec.a_type.max + 1),
                                       range(spec.b_type.min, spec.b_type.max + 1)))
        seen = []

        async def bench(ctx):
            acc = 0
            for n, (a, b) in enumerate(pairs):
                first, en = n % 7 == 0, n % 5 != 3
                ctx.set(dut.a, a)
                ctx.set(dut.b, b)
                ctx.set(dut.first, first)
                ctx.set(dut.en, en)
                total = (0 if first else acc) + a * b
                seen.append((ctx.get(dut.sum), _wrap(total, 12)))
                seen.append((ctx.get(dut.acc), _wrap(acc, 12)))     # the register itself
                await ctx.tick()
                if en:
                    acc = total

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        assert len(seen) == 2 * len(pairs)
        assert all(got == want for got, want in seen)

    def test_chain_is_combinational(self):
        spec = MacSpec("int8", "int8", acc_bits=16)
        dut = MacUnit(spec, stationary=False)
        out = []

        async def bench(ctx):
            for a, b, psum, first in [(-128, -128, 5, 0), (-128, -128, 30000, 0),
                                      (3, -4, 999, 1), (127, 127, -32768, 0)]:
                ctx.set(dut.a, a)
                ctx.set(dut.b, b)
                ctx.set(dut.psum_in, psum)
                ctx.set(dut.first, first)
                out.append((ctx.get(dut.sum), _wrap((0 if first else psum) + a * b, 16)))

        sim = Simulator(dut)
        sim.add_testbench(bench)
        sim.run()
        assert all(got == want for got, want in out)
        assert "en" not in dut.signature.members and "psum_in" in dut.signature.members
