"""The MAC FU against Python integer arithmetic, in Amaranth's simulator (no build needed)."""

import itertools

import pytest
from amaranth.sim import Simulator

from golden.int_types import IntType
from hw.mac import MacSpec, MacUnit


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class TestMacSpec:
    def test_product_bits(self):
        assert MacSpec("int8", "int8").product_bits == 16
        assert MacSpec("uint4", "uint4", acc_bits=16).product_bits == 9

    def test_acc_too_narrow(self):
        with pytest.raises(ValueError, match="acc_bits must be in 16..64"):
            MacSpec("int8", "int8", acc_bits=12)

    def test_operand_too_wide(self):
        with pytest.raises(ValueError, match="at most 16 bits"):
            MacSpec("int32", "int8")

    def test_parses_names(self):
        assert MacSpec("uint4", "int8").a_type == IntType(4, signed=False)


class TestMacUnit:
    @pytest.mark.parametrize("a_type,b_type", [("int4", "int4"), ("uint4", "int4"),
                                               ("int4", "uint4"), ("uint4", "uint4")])
    def test_exhaustive_int4_products(self, a_type, b_type):
        """Every int4 operand pair, accumulated with clear/en as the array drives them."""
        spec = MacSpec(a_type, b_type, acc_bits=12)
        dut = MacUnit(spec)
        pairs = list(itertools.product(range(spec.a_type.min, spec.a_type.max + 1),
                                       range(spec.b_type.min, spec.b_type.max + 1)))
        seen = []

        async def bench(ctx):
            acc = 0
            for n, (a, b) in enumerate(pairs):
                clear, en = n % 7 == 0, n % 5 != 3
                ctx.set(dut.a, a)
                ctx.set(dut.b, b)
                ctx.set(dut.clear, clear)
                ctx.set(dut.en, en)
                await ctx.tick()
                acc = (0 if clear else acc) + (a * b if en else 0)
                seen.append((ctx.get(dut.acc), _wrap(acc, 12)))

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        assert len(seen) == len(pairs)
        assert all(got == want for got, want in seen)

    def test_wraps_like_twos_complement(self):
        spec = MacSpec("int8", "int8", acc_bits=16)
        dut = MacUnit(spec)
        out = []

        async def bench(ctx):
            ctx.set(dut.a, -128)
            ctx.set(dut.b, -128)
            ctx.set(dut.en, 1)
            for _ in range(3):
                await ctx.tick()
                out.append(ctx.get(dut.acc))

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        assert out == [_wrap(16384 * n, 16) for n in (1, 2, 3)]
