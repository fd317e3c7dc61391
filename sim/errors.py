"""Errors of the simulation layer; the CLI prints them as one line."""

__all__ = ["BuildError", "SimError", "SimulationError", "ToolchainError"]


class SimError(RuntimeError):
    """Base class of simulation-layer failures."""


class ToolchainError(SimError):
    """A toolchain piece (Verilator, make, a C++ compiler) is missing or unusable."""


class BuildError(SimError):
    """Verilator could not build a design; the message carries Verilator's own errors."""


class SimulationError(SimError):
    """A simulation ran but failed (a test bench error, a timeout, a crash)."""
