"""The sweep result store (flows.sweep_store): rows, reopening, and clear errors for files
that are not this sweep's store."""

from __future__ import annotations

import sqlite3

import pytest

from flows.sweep_spec import canonical_json, point_id
from flows.sweep_store import Store, StoreError, read_rows

VERSIONS = {"lego_codesign": "0.1.0", "git": None, "python": "3.11"}


def record(store, n: int, status: str = "done"):
    inputs = {"model": "m", "n": n}
    outputs = {"cycles": 10 * n, "energy_pj": n / 3} if status == "done" else None
    error = None if status == "done" else f"SpecError: bad {n}"
    store.record(point_id(inputs), inputs, status, outputs, error, VERSIONS, 0.5 + n)
    return point_id(inputs)


def test_rows_sorted_and_reopened(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, "t") as store:
        ids = [record(store, n) for n in range(5)] + [record(store, 5, "failed")]
        rows = store.rows()
        assert store.statuses() == {i: ("failed" if n == 5 else "done")
                                    for n, i in enumerate(ids)}
    assert [r["id"] for r in rows] == sorted(ids)
    row = next(r for r in rows if r["inputs"] == {"model": "m", "n": 2})
    assert row == {"id": ids[2], "inputs": {"model": "m", "n": 2}, "status": "done",
                   "outputs": {"cycles": 20, "energy_pj": 2 / 3}, "error": None,
                   "seconds": 2.5}
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["outputs"] is None and failed["error"] == "SpecError: bad 5"
    assert read_rows(path) == rows
    with Store(path, "t") as store:             # reopened: the same rows; a record replaces
        assert store.rows() == rows
        store.record(ids[5], {"model": "m", "n": 5}, "done", {"cycles": 1}, None, VERSIONS, 1)
        assert store.statuses()[ids[5]] == "done"
    con = sqlite3.connect(path)
    inputs, versions = con.execute("SELECT inputs, versions FROM points WHERE id = ?",
                                   (ids[0],)).fetchone()
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()
    assert inputs == canonical_json({"model": "m", "n": 0})
    assert versions == canonical_json(VERSIONS)


def test_readers_see_committed_rows_while_open(tmp_path):
    path = tmp_path / "s.db"
    with Store(path, "t") as store:
        record(store, 1)
        assert len(read_rows(path)) == 1        # committed at once, readable meanwhile
        record(store, 2)
        assert len(read_rows(path)) == 2


def test_clear_errors(tmp_path):
    path = tmp_path / "s.db"
    Store(path, "first").close()
    with pytest.raises(StoreError, match=r"s.db holds sweep 'first', not 'second': use "):
        Store(path, "second")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="junk.db"):
        Store(junk, "t")
    with pytest.raises(StoreError, match="junk.db"):
        read_rows(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE results (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"other.db: not a sweep store \(tables: results\)"):
        Store(other, "t")
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema '0', this lego reads schema '1'"):
        Store(path, "first")
    with pytest.raises(StoreError, match="no such store"):
        read_rows(tmp_path / "missing.db")
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no" / "s.db", "t")
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path, "t")
    with Store(tmp_path / "ok.db", "t") as store, pytest.raises(ValueError, match="status"):
        store.record("x", {}, "maybe", None, None, VERSIONS, 0)
