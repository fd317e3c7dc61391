"""``flows.e2e_forward``: an e2e run's accelerator calls joined into one program over one
DRAM (every DRAM address relocated) end in every call's own results on the reference
machine; a wrong join is caught. The RTL side runs in tests/flows/test_e2e.py. And
``flows.e2e_blocks``: the error per block call."""

from __future__ import annotations

import pytest

import flows.e2e as e2e
import flows.e2e_forward as fwd
from hw.front.arch import load_arch
from hw.front.isa import Instruction, ProgramError, relocate

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


@pytest.mark.parametrize("name, arch", [("tiny-llama2-7b-duo", FUSED),
                                        ("tiny-sana-0.6b", FUSED),
                                        ("tiny-llama3-8b-duo", GEMMINI)])
def test_the_calls_compose_into_one_program(name, arch):
    run = e2e.run_e2e(name, arch, engine="ref", gpu=False, host=False)
    f = run.forward
    assert f.passed and f.dram_match and f.rtl_cycles is None
    assert f.calls == len(run.ops) and f.instructions > f.calls
    assert 0 < f.model_cycles <= f.calls_cycles          # junctions overlap, never add
    assert run.report()["one_program_match"] is True and run.passed
    # the error per block (the entries of the model's ModuleLists), against float
    prefix = "blocks" if "sana" in name else "layers"
    assert [b[0] for b in run.blocks] == [f"{prefix}.0#1", f"{prefix}.1#1"]
    assert all(0 < rel < 0.1 and err > 0 for _, err, rel in run.blocks)
    assert run.report()["max_block_rel_err"] == max(b[2] for b in run.blocks)


def test_block_errors_need_the_same_calls():
    import numpy as np

    from flows.e2e_blocks import block_errors

    a = [("layers.0#1", np.ones(3))]
    assert block_errors(a, [("layers.0#1", np.full(3, 2.0))]) == (("layers.0#1", 1.0, 0.5),)
    with pytest.raises(ValueError, match="different blocks"):
        block_errors(a, [("layers.1#1", np.ones(3))])


def test_a_wrong_join_is_caught(monkeypatch):
    """Every call placed at DRAM byte 0: they overwrite each other's bytes."""
    monkeypatch.setattr(fwd, "relocate", lambda program, offset: list(program))
    run = e2e.run_e2e("tiny-llama3-8b-duo", FUSED, engine="ref", gpu=False, host=False)
    assert not run.forward.dram_match and not run.passed and run.bit_exact


def test_relocate_moves_dram_addresses_only():
    prog = [Instruction("mvin", (("dram", 64), ("stride", 16), ("sp", 3), ("rows", 2),
                                 ("cols", 16))),
            Instruction("mvout", (("acc", 1), ("dram", 0), ("stride", 64), ("rows", 1),
                                  ("cols", 16))),
            Instruction("config", (("dataflow", 1),))]
    moved = relocate(prog, 4096)
    assert [i["dram"] for i in moved[:2]] == [4160, 4096]
    assert moved[0]["sp"] == 3 and moved[1]["acc"] == 1 and moved[2] == prog[2]
    assert relocate(prog, 0) == prog
    with pytest.raises(ValueError, match="offset must be an int >= 0, got -1"):
        relocate(prog, -1)
    with pytest.raises(ProgramError, match="does not fit"):
        relocate(prog, 1 << 32)
