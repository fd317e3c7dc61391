"""The model zoo: registered builders of :class:`~mapping.ir.ModelGraph` by name.

Every model has a ``tiny-<name>`` twin with the same stages and operator kinds at toy sizes
(for functional runs). :func:`model` builds one by name with keyword overrides of its builder's
defaults; :data:`DESCRIPTIONS` holds one line per model. Sources: ``docs/models.md``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from functools import partial

from .ir import ModelGraph
from .zoo_flux import flux1_dev, tiny_flux1_dev
from .zoo_llama import llama2_7b_duo, llama3_8b_duo, tiny_llama2_7b_duo, tiny_llama3_8b_duo
from .zoo_sana import sana, tiny_sana
from .zoo_vila import tiny_vila_u, vila_u_generation

__all__ = ["DESCRIPTIONS", "MODELS", "describe", "flux1_dev", "llama2_7b_duo", "llama3_8b_duo",
           "model", "options", "sana", "tiny_flux1_dev", "tiny_llama2_7b_duo",
           "tiny_llama3_8b_duo", "tiny_sana", "tiny_vila_u", "vila_u_generation"]

_ENTRIES: tuple[tuple[str, Callable[..., ModelGraph], Callable[..., ModelGraph], str], ...] = (
    ("flux1-dev", flux1_dev, tiny_flux1_dev,
     "FLUX.1-dev 12B MM-DiT, one step at 1024px; SVDQuant W4A4 rank 32 (or bf16, nvfp4)"),
    ("sana-0.6b", partial(sana, "0.6B"), partial(tiny_sana, "0.6B"),
     "Sana-0.6B linear DiT (LiteLA + Mix-FFN), one step at 1024px (or 4096px)"),
    ("sana-1.6b", partial(sana, "1.6B"), partial(tiny_sana, "1.6B"),
     "Sana-1.6B linear DiT (LiteLA + Mix-FFN), one step at 1024px (or 4096px)"),
    ("llama3-8b-duo", llama3_8b_duo, tiny_llama3_8b_duo,
     "Llama-3-8B GQA + DuoAttention (50% retrieval heads), decode or 4k-chunk prefill at 32k"),
    ("llama2-7b-duo", llama2_7b_duo, tiny_llama2_7b_duo,
     "Llama-2-7B MHA + DuoAttention (25% retrieval heads), decode or 4k-chunk prefill at 32k"),
    ("vila-u", vila_u_generation, tiny_vila_u,
     "VILA-U-7B image generation: 256 tokens x (LLaMA-2 decode, CFG batch 2 + 4 depth codes)"),
)

MODELS: dict[str, Callable[..., ModelGraph]] = {}
"""Model name -> builder (keyword arguments override its defaults)."""
DESCRIPTIONS: dict[str, str] = {}
"""Model name -> one line of description."""
for _name, _full, _tiny, _desc in _ENTRIES:
    MODELS[_name], DESCRIPTIONS[_name] = _full, _desc
    MODELS[f"tiny-{_name}"], DESCRIPTIONS[f"tiny-{_name}"] = _tiny, f"toy-size twin: {_desc}"
del _name, _full, _tiny, _desc


def options(name: str) -> dict[str, object]:
    """The keyword options of model ``name`` with their defaults."""
    return {p.name: p.default for p in inspect.signature(_builder(name)).parameters.values()}


def _builder(name: str) -> Callable[..., ModelGraph]:
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (known: {', '.join(MODELS)})")
    return MODELS[name]


def model(name: str, **overrides: object) -> ModelGraph:
    """Build model ``name``; ``overrides`` replace its builder's defaults (``ValueError`` for an
    unknown name, naming the close matches, or an unknown option, naming the known ones)."""
    builder = _builder(name)
    known = options(name)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"model {name!r} has no option {unknown[0]!r} "
                         f"(options: {', '.join(known) or 'none'})")
    return builder(**overrides)


def describe() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered model, in registry order."""
    return list(DESCRIPTIONS.items())
