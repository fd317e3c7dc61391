"""Element formats of the operator IR (see :mod:`mapping.ir`): exact storage bytes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BF16", "FORMATS", "FP8_E4M3", "FP8_E5M2", "FP16", "FP32", "INT4_AWQ_G64", "INT4_G64",
           "INT8", "NVFP4", "UINT4_G64", "Format", "check_int", "get_format"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def check_int(owner: str, field: str, value: object, low: int) -> int:
    """``value`` if it is an int (not a bool) >= ``low``; ``ValueError`` naming the field else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}.{field} must be an int >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class Format:
    """A tensor element format: ``bits`` per code, optional scales per ``group`` elements.

    Storage of N elements (rows of ``inner`` elements when given, N a multiple of it)::

        codes  = ceil(N * bits / 8)
        groups = ceil(N / group), or (N / inner) * ceil(inner / group)     (0 without groups)
        scales = ceil(groups * (scale_bits + zero_bits) / 8)
        tensor = ceil(tensor_scale_bits / 8) if N > 0 else 0
        nbytes = codes + scales + tensor
    """

    name: str
    bits: int
    kind: str = "float"
    group: int = 0
    scale_bits: int = 0
    zero_bits: int = 0
    tensor_scale_bits: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Format.name must be a non-empty string, got {self.name!r}")
        check_int("Format", "bits", self.bits, 1)
        for f in ("group", "scale_bits", "zero_bits", "tensor_scale_bits"):
            check_int("Format", f, getattr(self, f), 0)
        if self.kind not in ("float", "int", "uint"):
            raise ValueError(f"Format.kind must be float, int or uint, got {self.kind!r}")
        if bool(self.group) != bool(self.scale_bits) or (self.zero_bits and not self.group):
            raise ValueError(f"Format {self.name!r}: group, scale_bits (and zero_bits) go "
                             f"together, got group={self.group}, scale_bits={self.scale_bits}")

    def __repr__(self) -> str:
        return f"FORMATS[{self.name!r}]"

    def nbytes(self, n: int, inner: int | None = None) -> int:
        """Exact storage bytes of ``n`` elements (codes + group scales + tensor scale)."""
        check_int(self.name, "n", n, 0)
        groups = 0
        if self.group:
            if inner is None:
                groups = _cdiv(n, self.group)
            else:
                check_int(self.name, "inner", inner, 1)
                if n % inner:
                    raise ValueError(f"{self.name}: {n} elements are not rows of {inner}")
                groups = n // inner * _cdiv(inner, self.group)
        scales = _cdiv(groups * (self.scale_bits + self.zero_bits), 8)
        return _cdiv(n * self.bits, 8) + scales + (_cdiv(self.tensor_scale_bits, 8) if n else 0)


BF16 = Format("bf16", 16)
FP16 = Format("fp16", 16)
FP32 = Format("fp32", 32)
FP8_E4M3 = Format("fp8_e4m3", 8, tensor_scale_bits=32)
FP8_E5M2 = Format("fp8_e5m2", 8, tensor_scale_bits=32)
INT8 = Format("int8", 8, "int")
INT4_G64 = Format("int4_g64", 4, "int", group=64, scale_bits=16)
UINT4_G64 = Format("uint4_g64", 4, "uint", group=64, scale_bits=16)
INT4_AWQ_G64 = Format("int4_awq_g64", 4, "uint", group=64, scale_bits=16, zero_bits=16)
NVFP4 = Format("nvfp4", 4, "float", group=16, scale_bits=8, tensor_scale_bits=32)

FORMATS: dict[str, Format] = {f.name: f for f in (
    BF16, FP16, FP32, FP8_E4M3, FP8_E5M2, INT8, INT4_G64, UINT4_G64, INT4_AWQ_G64, NVFP4)}
"""Registered formats by name. fp8: per-tensor fp32 scale; int8: plain codes; int4_g64 /
uint4_g64: SVDQuant's W4A4 (groups of 64 along K, 16-bit scales; uint4 after the GELU shift);
int4_awq_g64: AWQ W4A16 weights (16-bit scale and zero per 64); nvfp4: E2M1 codes, an E4M3
scale per 16, one fp32 tensor scale."""
_ALIASES = {"fp8": "fp8_e4m3", "int4": "int4_g64", "uint4": "uint4_g64"}


def get_format(value: Format | str, owner: str = "format") -> Format:
    """The registered format ``value`` names or is (``ValueError`` for anything else)."""
    if isinstance(value, str):
        found = FORMATS.get(_ALIASES.get(value, value))
    else:
        found = value if isinstance(value, Format) and FORMATS.get(value.name) == value else None
    if found is None:
        raise ValueError(f"{owner} must be one of {sorted(FORMATS)}, got {value!r}")
    return found
