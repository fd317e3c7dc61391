"""The tiny models' accelerator steps on the generated accelerator's RTL (the fast Verilator
engine): every distinct lowered program of every ``tiny-`` model on both shipped
architectures ends with the reference machine's DRAM, in the cycle model's cycles, which are
the mapper's cost of the step (``model_cycles`` x runs; a DuoAttention step runs after its
setup, whose words the RTL runs with it: ``run_cycles``). The Verilator builds are
:mod:`tests.flows.test_accel_engines`' (cached per architecture and generator)."""

import pytest

from flows.accel_engines import rtl_lacks, run_program
from hw.front.arch import load_arch
from hw.front.isa import encode
from hw.front.isa_machine import Machine
from mapping import zoo
from mapping.lower import LoweredStep, lower_model

ARCHS = ("gemmini_like", "lego_fused")
TINY = tuple(name for name in zoo.MODELS if name.startswith("tiny-"))
#: steps whose programs hold unit commands the RTL does not execute (checked on the
#: reference machine only): none on the shipped architectures
RTL_LACKS: dict[str, dict[str, str]] = {"gemmini_like": {}, "lego_fused": {}}


def _distinct(arch) -> list[LoweredStep]:
    """Every tiny model's lowered steps, each distinct program on its DRAM once."""
    seen: dict[tuple, LoweredStep] = {}
    for name in TINY:
        for step in lower_model(zoo.model(name), arch):
            seen.setdefault((tuple(map(encode, step.words)), step.dram_in), step)
    return list(seen.values())


def _reference_only(arch, step: LoweredStep) -> None:
    machine = Machine(arch, len(step.dram_in))
    machine.write_dram(0, step.dram_in)
    machine.run(step.words)
    assert machine.dram.tobytes() == step.dram_out, step.name


@pytest.mark.parametrize("name", ARCHS)
def test_tiny_model_steps_on_rtl(name):
    arch = load_arch(f"examples/arch/{name}.yaml")
    steps = _distinct(arch)
    lacking = {}
    for step in steps:
        assert step.model_cycles * step.runs == step.cycles, step.name
        if reason := rtl_lacks(step.words):
            lacking[step.name] = reason
            _reference_only(arch, step)
            continue
        rtl = run_program(arch, step.words, step.dram_in, engine="fast",
                          expected_cycles=step.run_cycles)
        assert rtl.dram == step.dram_out, step.name
        assert rtl.cycles == step.run_cycles, step.name
    assert lacking == RTL_LACKS[name]
    assert len(steps) > 20 and any(s.lowering != "gemm" for s in steps) == (
        name == "lego_fused")
