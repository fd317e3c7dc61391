"""The result store of a sweep: one SQLite file (stdlib :mod:`sqlite3`), one row per point,
written as points finish so that an interrupted sweep keeps what it finished.

Schema (:data:`SCHEMA_VERSION`)::

    points(id TEXT PRIMARY KEY,   -- flows.sweep_spec.point_id(inputs)
           sweep TEXT,            -- the sweep's name
           inputs TEXT,           -- canonical JSON (flows.sweep_spec.canonical_json)
           status TEXT,           -- 'done' or 'failed'
           outputs TEXT,          -- canonical JSON of flows.sweep_eval.evaluate's, or NULL
           error TEXT,            -- 'ExceptionClass: message' of a failed point, or NULL
           versions TEXT,         -- JSON: lego-codesign version, git describe, python
           seconds REAL)          -- wall time of the evaluation (never in outputs)
    meta(key TEXT PRIMARY KEY, value TEXT)   -- 'schema', 'sweep' and 'current' (JSON: the
                                             -- point ids of the sweep as last run)

The journal is WAL and every :meth:`Store.record` is its own committed transaction, so a
process killed at any moment (``kill -9``) leaves every point recorded before it, and only
the points in flight are lost. One writer (the sweep's parent process); readers may look on
while it writes (:func:`read_rows`).

:meth:`Store.rows` (and :func:`read_rows`) is the row format the report reads: dicts sorted
by id, ``{"id", "inputs", "status", "outputs", "error", "seconds"}`` with ``inputs`` and
``outputs`` decoded; two stores of the same sweep hold equal rows but for ``seconds``. Rows
of points an edited sweep no longer has stay in the store but are not read unless asked for
(``everything=True``): the report shows the sweep as last run.

Every failure (not a SQLite file, another schema, another sweep's store, an unwritable path)
is a :class:`StoreError` (a ``ValueError``) naming the file.

Layer: flows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .sweep_spec import canonical_json

__all__ = ["SCHEMA_VERSION", "STATUSES", "Store", "StoreError", "read_rows"]

SCHEMA_VERSION = "1"
STATUSES = ("done", "failed")
_COLUMNS = ("id", "sweep", "inputs", "status", "outputs", "error", "versions", "seconds")
_CREATE = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS points (id TEXT PRIMARY KEY, sweep TEXT NOT NULL, "
    "inputs TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('done', 'failed')), "
    "outputs TEXT, error TEXT, versions TEXT, seconds REAL)",
)


class StoreError(ValueError):
    """The store cannot be opened, is not a sweep store of this schema or sweep, or cannot
    be written; the message names the file."""


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                  isolation_level=None)
        else:
            con = sqlite3.connect(path, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")   # WAL: durable against process death
        con.execute("PRAGMA busy_timeout=10000")
        return con
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}") from None


def _check_schema(con: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The store's meta; ``StoreError`` unless it is a sweep store of :data:`SCHEMA_VERSION`."""
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "points"} <= tables:
            raise StoreError(f"{path}: not a sweep store (tables: "
                             f"{', '.join(sorted(tables)) or 'none'})")
        meta = dict(con.execute("SELECT key, value FROM meta"))
        columns = tuple(r[1] for r in con.execute("PRAGMA table_info(points)"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a sweep store: {exc}") from None
    if meta.get("schema") != SCHEMA_VERSION or columns != _COLUMNS:
        raise StoreError(f"{path}: a sweep store of schema {meta.get('schema')!r}, this lego "
                         f"reads schema {SCHEMA_VERSION!r}: use another --store")
    return meta


def _row(r: tuple) -> dict[str, Any]:
    return {"id": r[0], "inputs": json.loads(r[1]), "status": r[2],
            "outputs": None if r[3] is None else json.loads(r[3]), "error": r[4],
            "seconds": r[5]}


_SELECT = "SELECT id, inputs, status, outputs, error, seconds FROM points ORDER BY id"


class Store:
    """The store at ``path`` for sweep ``sweep``, created if missing; ``StoreError`` if the
    file holds another sweep or is no sweep store. A context manager (closes)."""

    def __init__(self, path: str | Path, sweep: str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a store file")
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: folder {str(self.path.parent)!r} does not exist")
        self.sweep = sweep
        self._con = _connect(self.path, readonly=False)
        try:
            self._init(sweep)
        except BaseException:
            self._con.close()
            raise

    def _init(self, sweep: str) -> None:
        try:
            fresh = not self._con.execute("SELECT name FROM sqlite_master").fetchall()
            if fresh:
                with self._con:
                    self._con.execute("BEGIN")
                    for sql in _CREATE:
                        self._con.execute(sql)
                    self._con.executemany("INSERT INTO meta VALUES (?, ?)",
                                          (("schema", SCHEMA_VERSION), ("sweep", sweep)))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a sweep store: {exc}") from None
        meta = _check_schema(self._con, self.path)
        if meta.get("sweep") != sweep:
            raise StoreError(f"{self.path} holds sweep {meta.get('sweep')!r}, not {sweep!r}: "
                             f"use another --store")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (every record is already committed)."""
        self._con.close()

    def statuses(self) -> dict[str, str]:
        """Point id -> status of every recorded point."""
        return dict(self._con.execute("SELECT id, status FROM points"))

    def done_by(self) -> dict[str, str | None]:
        """Point id -> the ``code`` digest of its ``versions`` (None when it has none) of
        every done point."""
        return {pid: json.loads(v or "{}").get("code") for pid, v in self._con.execute(
            "SELECT id, versions FROM points WHERE status = 'done'")}

    def set_current(self, point_ids: list[str]) -> int:
        """Record ``point_ids`` as the sweep's points (what :meth:`rows` returns); the
        number of stored rows not among them (kept, not read)."""
        ids = sorted(point_ids)
        try:
            with self._con:
                self._con.execute("BEGIN IMMEDIATE")
                self._con.execute("INSERT OR REPLACE INTO meta VALUES ('current', ?)",
                                  (canonical_json(ids),))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record the sweep's points: {exc}") from None
        return len(set(self.statuses()) - set(ids))

    def record(self, point_id: str, inputs: dict, status: str, outputs: dict | None,
               error: str | None, versions: dict, seconds: float) -> None:
        """Write one finished point (replacing an earlier row of its id) and commit."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        row = (point_id, self.sweep, canonical_json(inputs), status,
               None if outputs is None else canonical_json(outputs), error,
               canonical_json(versions), float(seconds))
        try:
            with self._con:
                self._con.execute("BEGIN IMMEDIATE")
                self._con.execute(f"INSERT OR REPLACE INTO points VALUES "
                                  f"({', '.join('?' * len(_COLUMNS))})", row)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record point {point_id}: {exc}") from None

    def rows(self, everything: bool = False) -> list[dict[str, Any]]:
        """The sweep's points (every stored point with ``everything``) as the report's row
        dicts, sorted by id (module docstring)."""
        return _rows(self._con, everything)


def _rows(con: sqlite3.Connection, everything: bool) -> list[dict[str, Any]]:
    rows = [_row(r) for r in con.execute(_SELECT)]
    current = dict(con.execute("SELECT key, value FROM meta")).get("current")
    if everything or current is None:
        return rows
    keep = set(json.loads(current))
    return [r for r in rows if r["id"] in keep]


def read_rows(path: str | Path, everything: bool = False) -> list[dict[str, Any]]:
    """The rows of the store at ``path`` (any sweep), read-only, as :meth:`Store.rows`;
    ``StoreError`` if it does not exist or is no sweep store."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such store")
    con = _connect(path, readonly=True)
    try:
        _check_schema(con, path)
        return _rows(con, everything)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the store: {exc}") from None
    finally:
        con.close()
