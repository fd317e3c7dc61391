"""The Ray backend of sweeps (flows.sweep_run): a local Ray instance started for the run
gives the same store rows as the process pool (ray is a dependency: no skip)."""

from __future__ import annotations

from flows.sweep_run import run_sweep
from flows.sweep_spec import canonical_json, sweep_from_dict
from flows.sweep_store import read_rows

SWEEP = {"name": "ray", "models": ["tiny-llama3-8b-duo", "tiny-sana-0.6b"],
         "base": "examples/arch/lego_fused.yaml", "axes": {"array": ["3x3", "8x8", "16x16"]}}


def without_seconds(rows):
    return canonical_json([{k: v for k, v in r.items() if k != "seconds"} for r in rows])


def test_ray_gives_the_pools_rows(tmp_path):
    spec = sweep_from_dict(SWEEP)
    pool = run_sweep(spec, tmp_path / "pool.db", workers=2, progress=None)
    ray = run_sweep(spec, tmp_path / "ray.db", backend="ray", workers=2, progress=None)
    assert {k: v for k, v in pool.items() if k != "store"} == \
        {k: v for k, v in ray.items() if k != "store"} == \
        {"points": 6, "computed": 6, "reused": 0, "failed": 2,      # 3x3: recorded failures
         "stale": 0, "dropped": 0}
    rows = read_rows(tmp_path / "ray.db")
    assert without_seconds(rows) == without_seconds(read_rows(tmp_path / "pool.db"))
    assert {r["error"] for r in rows if r["status"] == "failed"} == {
        "SpecError: units.dequant.group = 64 is not a multiple of the array edge 3"}
