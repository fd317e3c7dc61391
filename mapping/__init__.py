"""mapping: whole generative models as operator graphs, to be scheduled onto a generated
accelerator or a GPU (the mapper, importer, GPU roofline and CLI build on this layer).

* :mod:`mapping.ir`: element formats with exact storage bytes (bf16 ... SVDQuant int4 with
  group scales, nvfp4), one frozen, validated dataclass per operator kind (``Linear``,
  ``Matmul``, ``Conv2d``, ``Elementwise``, ``Norm``, ``Attention``, ``LinearAttention``,
  ``KVCacheWrite``, ``KVCacheRead``, ``Embedding``) reporting MACs and bytes, and
  ``ModelGraph``: named stages with repeat counts, totals, a JSON round trip.
  (Implementation split over ``ir_format`` and ``ir_ops``; import from ``mapping.ir``.)
* :mod:`mapping.zoo`: FLUX.1-dev (SVDQuant), Sana-0.6B/1.6B, Llama-3-8B / Llama-2-7B with
  DuoAttention, VILA-U generation, each with a ``tiny-`` twin; ``model(name, **overrides)``.
* :mod:`mapping.ratios`: the seed papers' headline ratios recomputed from the IR.

Pure Python: importing this package imports neither torch nor numpy. Model facts and sources:
``docs/models.md``.
"""

from .ir import ModelGraph, Stage, Totals
from .zoo import DESCRIPTIONS, MODELS, model

__all__ = ["DESCRIPTIONS", "MODELS", "ModelGraph", "Stage", "Totals", "model"]
