"""Design specs: a tensor operation (loop nest + affine accesses), an FU array and a dataflow.

A spec is plain data (frozen dataclasses, :mod:`.spec_model`, each validated on construction)
and is read from YAML (:mod:`.spec_yaml`)::

    name: gemm_os
    op:
      dims: {i: 8, j: 8, k: 8}                # default problem extents
      tensors:
        A: {index: "i, k", role: input, type: int8}
        B: {index: "k, j", role: input, type: int8}
        C: {index: "i, j", role: accumulate, type: int32}
    array: [4, 4]
    dataflow:
      name: output_stationary
      space: ["i", "j"]                       # one affine expression per array axis
      time: "i + j + k"                       # the cycle within a tile
      tile: {i: 4, j: 4, k: 8}                # intra-tile extents (default: the problem)
      outer_order: [i, j, k]                  # outer tile loops, outermost first (a list)

Every index / space / time expression is affine in the dims with integer coefficients
(``"y + r"``, ``"2*x - 1"``); the equivalent integer matrices are what the generator uses.
A tensor may give the matrix form instead of ``index``: ``access: [[1, 0, 0], [0, 0, 1]]``
(one row per axis, one column per dim) and ``offset: [0, 0]``.

What a spec may say, and what it is told otherwise (one :class:`SpecError` naming the field
path and the value; the file too when read from one):

* Every key is known (``tiles:`` is an error that suggests ``tile:``), every field has its
  type (``outer_order`` a list of dims, ``index`` a string, ``array`` a list of sizes, ...).
* Each extent and tile is an integer in ``1..MAX_EXTENT`` (2**31 - 1), and a tensor has at
  most ``MAX_TENSOR_ELEMENTS`` (2**24) elements (its words fill the generated memories).
* Two ``input`` tensors and one ``accumulate`` output. Inputs are at most 16 bits; the output
  type holds their exact product; an unsigned output needs both inputs unsigned.
* Index coefficients and offsets are non-negative. Each output axis is a dim or a sum of dims
  with coefficient 1 and no offset, and no dim indexes two output axes (``"i, j"``,
  ``"i + k, j"``; not ``"i + 1, j"`` or ``"2*i, j"``), so every output element is written; an
  output axis that sums dims needs each of them within one tile.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from .spec_model import (
    MAX_EXTENT,
    MAX_TENSOR_ELEMENTS,
    DataflowSpec,
    DesignSpec,
    OpSpec,
    SpecError,
    TensorSpec,
    in_file,
)
from .spec_yaml import load_spec, load_specs, parse_affine, spec_from_dict, specs_from_dict

__all__ = ["MAX_EXTENT", "MAX_TENSOR_ELEMENTS", "DataflowSpec", "DesignSpec",
           "OpSpec", "SpecError", "TensorSpec", "in_file", "load_spec", "load_specs",
           "parse_affine", "spec_from_dict", "specs_from_dict"]
