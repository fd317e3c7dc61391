"""golden: the single source of truth.

Float references of the algorithms and bit-exact models of the hardware arithmetic. Everything in
``hw``, ``sim`` and ``sw`` is checked against this package. It imports nothing else of ours.

Array arguments (:mod:`golden.arrays`): every public function and method that takes array data
takes numpy arrays and torch tensors alike, computes in its module's native kind (numpy for the
bit-exact and quantization models, torch for the attention, Mix-FFN and DuoAttention models) and
returns arrays in the caller's kind, with the same dtype and values either way. With mixed
arguments the first array argument (in signature order) decides; a tensor result lands on the
first tensor argument's device. Scalars stand for 0-d arrays; a list, a string or any other
object raises ``golden.arrays.ArrayTypeError`` (a ``TypeError`` and a ``ValueError``) naming the
argument. Structured results (golden's dataclasses, e.g. ``NVFP4Tensor``, ``Fp8Quantized``,
``SVDQuantLinear``) keep their module's native arrays: they define a format. Numpy-based modules
import no torch, and calling them with numpy arrays imports none either.
"""
