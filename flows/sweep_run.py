"""Running a sweep: every point not yet done evaluated on a process pool or on Ray, each
result committed to the store by this (the parent) process as it arrives.

:func:`run_sweep` expands the sweep's points (every error of the sweep file is raised here,
before any work), opens the store, skips the points already ``done`` there by the same code
(``reused``; :func:`code_digest`: a point done by other code is ``stale`` and computed again),
evaluates the others (``computed``) with :func:`flows.sweep_eval.run_point` and records each as
it completes, in any order: the store's rows do not depend on the order, the backend or the
number of workers. The store remembers the sweep's points; rows of points an edited sweep
dropped stay but are not reported (``dropped``). A point recorded ``failed`` (its exception's
message kept) is computed again by the next run: failures of this code are deterministic and
cheap to repeat, and one caused by the machine (a worker killed for memory) deserves another
try. A worker that dies takes the points in flight with it: they are recorded failed ("worker
died") and the run goes on with a fresh pool.

Backends:

* ``"pool"`` (default): :class:`concurrent.futures.ProcessPoolExecutor` of ``workers``
  spawned processes (each imports the mapper once and keeps its caches across its points);
* ``"ray"``: a Ray task per point; ``address`` None starts a local Ray instance of
  ``workers`` CPUs for this run (and stops it after), else connects to that cluster
  (``"auto"``, ``"ray://host:10001"``). Ray is imported only here; a missing ``ray`` package
  is a :class:`~flows.sweep_spec.SweepError` saying how to install it. Each task carries its
  base architecture's YAML mapping, so workers need the code (``lego-codesign`` installed)
  but no sweep or architecture files (``FILE.py`` models excepted).

Progress goes to ``progress`` (a text stream, default stderr): ``done/total``, failures and
an ETA from this run's rate; redrawn in place at most every 0.5 s on a terminal, else a line
at most every 15 s, and always a last line.

Layer: flows.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .sweep_spec import SweepError, SweepSpec
from .sweep_store import Store

__all__ = ["BACKENDS", "CODE", "Progress", "code_digest", "run_sweep", "versions"]

BACKENDS = ("pool", "ray")
Result = tuple[str, str, "dict | None", "str | None", float]
Task = tuple[str, dict, dict]


#: what a point's outputs are computed by: a change to any Python file here makes the points
#: of earlier runs stale (computed again)
CODE = ("golden", "hw", "mapping", "sim", "flows/sweep_*.py", "flows/accel_engines.py")


def code_digest() -> str:
    """16 hex digits of the SHA-256 of :data:`CODE`'s Python sources (paths and bytes)."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pattern in CODE:
        paths = root.glob(pattern) if "*" in pattern or pattern.endswith(".py") \
            else (root / pattern).rglob("*.py")
        for path in sorted(paths):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str | None]:
    """What computed the points: this package's version, ``git describe`` of its checkout
    (None outside one), the Python version and :func:`code_digest`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("lego-codesign")
    except PackageNotFoundError:        # pragma: no cover - a plain checkout
        pkg = None
    root = Path(__file__).resolve().parents[1]
    try:
        git = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        described = git.stdout.strip() if git.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        described = None
    return {"lego_codesign": pkg, "git": described, "python": platform.python_version(),
            "code": code_digest()}


class Progress:
    """The progress line (module docstring): ``update()`` after each recorded point,
    ``close()`` at the end."""

    def __init__(self, name: str, total: int, reused: int, stream: TextIO | None) -> None:
        self.name, self.total, self.reused, self.stream = name, total, reused, stream
        self.done = self.failed = 0
        self.start = self._last = time.monotonic()
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if now - self._last >= (0.5 if self.tty else 15.0):
            self._write(now)

    def close(self) -> None:
        self._write(time.monotonic(), end="\n")

    def _write(self, now: float, end: str = "") -> None:
        if self.stream is None:
            return
        self._last = now
        spent = now - self.start
        left = self.total - self.reused - self.done
        eta = f", ETA {_clock(spent / self.done * left)}" if self.done and left else ""
        line = (f"sweep {self.name}: {self.reused + self.done}/{self.total} points "
                f"({self.reused} reused), {self.failed} failed, {_clock(spent)}{eta}")
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _pool(tasks: list[Task], workers: int) -> Iterator[Result]:
    """Results of ``tasks`` on a spawned process pool, as they complete; a broken pool's
    in-flight tasks come back failed and a new pool takes the rest."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from .sweep_eval import run_point

    pending = list(reversed(tasks))         # pop() takes them in the sweep's order
    while pending:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            running: dict = {}
            try:
                while pending or running:
                    while pending and len(running) < 2 * workers:
                        task = pending.pop()
                        running[ex.submit(run_point, *task)] = task
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    try:
                        for fut in finished:
                            yield fut.result()
                            del running[fut]
                    except BrokenProcessPool as exc:    # every task in flight is lost
                        for task in running.values():
                            yield task[0], "failed", None, f"worker died: {exc}", 0.0
                        break                           # a new pool takes the rest
            except BaseException:
                ex.shutdown(wait=False, cancel_futures=True)
                raise


def _ray(tasks: list[Task], workers: int, address: str | None) -> Iterator[Result]:
    """Results of ``tasks`` as Ray tasks, as they complete (module docstring)."""
    try:
        import ray
    except ImportError:
        raise SweepError("--backend ray needs the ray package (pip install 'ray==2.60.0'; "
                         "pyproject.toml pins it)") from None
    import logging

    from .sweep_eval import run_point

    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = ({"address": address} if address else
                                  {"num_cpus": workers, "include_dashboard": False})
        ray.init(**kwargs, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=True)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        refs = {remote.remote(*t): t for t in tasks}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            task = refs.pop(ready[0])
            try:
                yield ray.get(ready[0])
            except ray.exceptions.RayError as exc:      # the worker died, not the point
                message = " ".join(str(exc).split())[:500]
                yield task[0], "failed", None, f"worker died: {message}", 0.0
    finally:
        if started:
            ray.shutdown()


def run_sweep(spec: SweepSpec, store_path: str | Path, *, backend: str = "pool",
              workers: int | None = None, address: str | None = None,
              progress: TextIO | None = sys.stderr,
              on_result: Callable[[Result], None] | None = None) -> dict[str, Any]:
    """Run ``spec`` into the store at ``store_path`` (module docstring); the summary
    ``{"points", "computed", "reused", "failed", "stale", "dropped", "store"}``: points of
    the sweep, points evaluated by this run, points already done in the store by this code,
    points failed after this run, points computed again because other code had done them,
    stored points the sweep no longer has.
    ``workers``: processes (pool) or CPUs of a local Ray instance (default: the CPU count);
    ``on_result``: called with each result after it is recorded (tests)."""
    if backend not in BACKENDS:
        raise SweepError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise SweepError("--address goes with --backend ray")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise SweepError(f"workers must be a positive integer, got {workers!r}")
    points = spec.points                    # every error of the sweep file, before any work
    bases = {b.path: b.data for b in spec.bases}
    stamp = versions()
    with Store(store_path, spec.name) as store:
        done = store.done_by()
        todo = [(pid, inputs, bases[inputs["base"]]) for pid, inputs in points
                if done.get(pid, "") != stamp["code"]]
        stale = sum(pid in done for pid, _, _ in todo)
        dropped = store.set_current([pid for pid, _ in points])
        workers = min(workers, max(1, len(todo)))
        bar = Progress(spec.name, len(points), len(points) - len(todo), progress)
        results = _ray(todo, workers, address) if backend == "ray" else _pool(todo, workers)
        inputs_of = {t[0]: t[1] for t in todo}
        failed = 0
        try:
            for result in results if todo else ():
                pid, status, outputs, error, seconds = result
                store.record(pid, inputs_of[pid], status, outputs, error, stamp, seconds)
                failed += status == "failed"
                bar.update(status == "failed")
                if on_result is not None:
                    on_result(result)
        finally:
            results.close()
            bar.close()
    return {"points": len(points), "computed": len(todo), "reused": len(points) - len(todo),
            "failed": failed, "stale": stale, "dropped": dropped, "store": str(store_path)}
