"""The ``rtl`` measure of a sweep point: sampled operators of its model, at reduced shapes,
run on the point's generated accelerator (the fast Verilator engine) and checked bit-exact
and cycle-exact (:func:`rtl_outputs`).

Paper-shape operators are billions of cycles, so the samples come from the model's **twin**
(:func:`twin_label`): a zoo model's ``tiny-`` twin with the options that choose a variant
(strings, booleans, fractions: ``phase=decode``, ``quant=svdquant``, ``retrieval=0.25``), not
the sizes (integers: resolution, context, tokens); a ``tiny-`` model or a ``FILE.py:FUNCTION``
model is its own twin. The twin is mapped onto the point's architecture and lowered
(:func:`mapping.lower.lower_model`: every distinct accelerator step with seeded operands and
the reference machine's DRAM after it); ``samples`` of those steps are drawn without
replacement by ``numpy.random.default_rng(seed)``. Each drawn step must:

* be the mapper's cost: ``model_cycles x runs == cycles``;
* end the RTL run with the reference machine's DRAM, byte for byte (a step whose program
  holds unit commands the RTL does not execute is checked on the reference machine alone and
  listed under ``reference_only``);
* take the cycle model's cycles on the RTL (``run_cycles``).

A failed check raises :class:`RtlMismatch` naming the step and what differs: the point is
recorded as failed with that message (a wrong design is never a silent row). Outputs::

    {"rtl": {"twin": "tiny-llama3-8b-duo phase=decode", "steps": 17, "checked":
             ["layers.q_proj", ...], "reference_only": [], "cycles": 12345}}

The first point of an architecture builds its Verilator model (cached per architecture and
generator, :mod:`flows.accel_engines`): minutes for a large array.

Layer: flows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hw.front.arch import ArchSpec
from hw.front.isa_machine import Machine

from .accel_engines import rtl_lacks, run_program
from .sweep_models import build_graph, parse_model

__all__ = ["RtlMismatch", "rtl_outputs", "twin_label"]


class RtlMismatch(RuntimeError):
    """The RTL of a sampled step disagrees with the reference machine or the cost model."""


def twin_label(model: str) -> str:
    """The label of ``model``'s twin (module docstring), options in the label's order."""
    name, options = parse_model(model)
    if name.startswith("tiny-") or ":" in name:
        return model
    kept = {k: v for k, v in options.items() if isinstance(v, (str, bool, float))}
    return " ".join([f"tiny-{name}", *(f"{k}={_spell(v)}" for k, v in kept.items())])


def _spell(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _check(arch: ArchSpec, step) -> bool:
    """Run one lowered step (module docstring); True when it ran on the RTL, False when on
    the reference machine only. ``RtlMismatch`` on any difference."""
    if step.model_cycles * step.runs != step.cycles:
        raise RtlMismatch(f"step {step.name}: program {step.model_cycles} cycles x "
                          f"{step.runs} runs != the mapper's {step.cycles}")
    if rtl_lacks(step.words):
        machine = Machine(arch, len(step.dram_in))
        machine.write_dram(0, step.dram_in)
        machine.run(step.words)
        if machine.dram.tobytes() != step.dram_out:
            raise RtlMismatch(f"step {step.name}: the reference machine's DRAM differs from "
                              "the lowering's")
        return False
    run = run_program(arch, step.words, step.dram_in, engine="fast",
                      expected_cycles=step.run_cycles)
    if run.dram != step.dram_out:
        diff = next((i for i, (a, b) in enumerate(zip(run.dram, step.dram_out, strict=False))
                     if a != b), min(len(run.dram), len(step.dram_out)))
        raise RtlMismatch(f"step {step.name}: RTL DRAM differs from the reference machine's "
                          f"first at byte {diff}")
    if run.cycles != step.run_cycles:
        raise RtlMismatch(f"step {step.name}: RTL took {run.cycles} cycles, the cycle "
                          f"model {step.run_cycles}")
    return True


def rtl_outputs(arch: ArchSpec, model: str, *, samples: int, seed: int) -> dict[str, Any]:
    """Check ``samples`` lowered steps of ``model``'s twin on ``arch`` (module docstring);
    the ``rtl`` output. ``ValueError`` for ``samples < 1``; ``RtlMismatch`` on a failed
    check; the mapper's and lowering's errors as they raise them."""
    from mapping.lower import lower_model

    if samples < 1:
        raise ValueError(f"rtl samples must be >= 1, got {samples}")
    label = twin_label(model)
    steps = lower_model(build_graph(label), arch, seed=seed)
    if not steps:
        return {"rtl": {"twin": label, "steps": 0, "checked": [], "reference_only": [],
                        "cycles": 0}}
    rng = np.random.default_rng(seed)
    drawn = sorted(rng.choice(len(steps), size=min(samples, len(steps)), replace=False))
    checked, reference_only, cycles = [], [], 0
    for n in drawn:
        step = steps[int(n)]
        (checked if _check(arch, step) else reference_only).append(step.name)
        cycles += step.run_cycles
    return {"rtl": {"twin": label, "steps": len(steps), "checked": checked,
                    "reference_only": reference_only, "cycles": cycles}}
