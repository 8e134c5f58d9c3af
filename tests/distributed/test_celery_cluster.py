"""vlass_se_cube on a distributed Airflow: CeleryExecutor, PostgreSQL metadata DB, Redis broker,
api-server, scheduler, dag-processor, triggerer and two Celery workers as separate processes on
loopback (scripts/airflow_cluster.py), on the tiny field.

one run of the field: two of its mapped imaging tasks run at once, one on each worker (task
records); one worker is then SIGKILLed with everything it started while it runs its imaging task;
the scheduler notices the dead task (heartbeat timeout, tens of seconds here), the retry runs on
the other worker, and the run completes with products equal to the embedded run's (dag.test(),
the serial_run fixture) file for file, pixel for pixel.

Skips only when PostgreSQL's or Redis's server binaries are missing (.ci/run installs them).
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from scripts import airflow_cluster as ac

ROOT = Path(__file__).resolve().parents[2]
TEST_HOME = ROOT / ".airflow-test"
FIELD_ID = "T10t02.J005000-023000"
DAG_ID = "vlass_se_cube"


_missing = ac.missing_binaries()
if importlib.util.find_spec("airflow.providers.celery") is None:
    _missing.append("the Python package apache-airflow-providers-celery (make install)")

pytestmark = [
    pytest.mark.casa, pytest.mark.airflow, pytest.mark.distributed,
    pytest.mark.skipif(bool(_missing), reason="distributed Airflow test needs " + ", ".join(_missing)
                       + " (Debian: apt-get install postgresql redis-server; .ci/run does it)"),
]


@pytest.fixture(scope="module")
def cluster(tiny_field):
    t0 = time.time()
    with ac.Cluster(n_workers=2, heartbeat_timeout=20, imaging_slots=2,
                    logs_to=TEST_HOME / "cluster-logs") as c:
        print(f"\ncluster up in {time.time() - t0:.0f} s (logs: {c.logs})")
        api = c.api()
        api.wait_dag(DAG_ID, timeout=180)
        c.rest = api
        yield c


def _diagnose(c, api, run_id) -> str:
    tis = api.task_instances(DAG_ID, run_id)
    lines = [f"{t['task_id']}[{t['map_index']}] {t['state']} try={t['try_number']} host={t.get('hostname')}"
             for t in tis]
    for name in ("scheduler", *c.worker_names):
        log = c.logs / f"{name}.log"
        if log.exists():
            lines.append(f"--- {name}.log\n" + log.read_text(errors="replace")[-2500:])
    return "\n".join(lines)


def _imaging(api, run_id) -> list[dict]:
    return [t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "image_spw_group"]


def _tries(api, run_id, map_index) -> list[dict]:
    code, out = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/image_spw_group/{map_index}/tries")
    assert code == 200, out
    return sorted(out["task_instances"], key=lambda t: t["try_number"])


def assert_same_products(tree, ref_tree):
    """File names equal; every FITS pixel equal to float32 precision (NaN where the reference has NaN)."""
    import numpy as np
    from astropy.io import fits

    names = sorted(p.name for p in tree.products.iterdir())
    ref = sorted(p.name for p in ref_tree.products.iterdir())
    assert names == ref
    fits_names = [n for n in names if n.endswith(".fits")]
    assert fits_names, "no FITS products"
    eps = np.finfo(np.float32).eps
    for n in fits_names:
        with fits.open(tree.products / n) as a, fits.open(ref_tree.products / n) as b:
            da, db = np.asarray(a[0].data, dtype=np.float64), np.asarray(b[0].data, dtype=np.float64)
            assert da.shape == db.shape, n
            assert (np.isnan(da) == np.isnan(db)).all(), f"{n}: blanked pixels differ"
            ok = ~np.isnan(db)
            scale = np.abs(db[ok]).max()
            np.testing.assert_allclose(da[ok], db[ok], rtol=4 * eps, atol=4 * eps * scale, err_msg=n)


def test_run_spreads_imaging_over_both_workers_and_survives_a_killed_worker(cluster, serial_run):
    """One run: two imaging tasks run at once, one on each worker; one worker is then SIGKILLed
    with everything it started; its task is retried on the other; the run succeeds with the
    embedded run's products. (One run rather than two keeps the suite's time down.)"""
    from datetime import datetime, timezone

    from ccip_ops.runtree import RunTree

    api, run_id = cluster.rest, "dist__run"
    alive = [n for n in cluster.worker_names if cluster.alive(n)]
    assert len(alive) == 2
    code, out = api.trigger(DAG_ID, {"field_id": FIELD_ID}, run_id)
    assert code in (200, 201), out
    t0 = time.time()
    running = {}
    while time.time() - t0 < 3600 and len(running) < 2:
        running = {t["hostname"]: t for t in _imaging(api, run_id)
                   if t["state"] == "running" and t.get("hostname") in alive}
        state = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")[1].get("state")
        assert state not in ("success", "failed"), "the run ended before two imaging tasks ran at once: " \
            + _diagnose(cluster, api, run_id)
        if len(running) < 2:
            time.sleep(1)
    assert len(running) == 2, "imaging never ran on both workers at once: " + _diagnose(cluster, api, run_id)
    print("\nimaging at once on:", {h: t["rendered_map_index"] for h, t in running.items()})
    time.sleep(3)  # let tclean get under way
    dead = alive[0]
    victim = running[dead]
    survivor = alive[1]
    t_kill = time.time()
    cluster.kill_group(dead)  # SIGKILL: the worker, its pool, the task supervisor and the task runner
    assert not cluster.alive(dead)
    print(f"killed {dead} while it ran image_spw_group[{victim['rendered_map_index']}] "
          f"try {victim['try_number']}, {t_kill - t0:.0f} s into the run")

    run = api.wait_run(DAG_ID, run_id, timeout=3600)
    print(f"run: {run['state']} in {time.time() - t0:.0f} s")
    assert run["state"] == "success", _diagnose(cluster, api, run_id)

    imaging = _imaging(api, run_id)
    assert len(imaging) == 3 and all(t["state"] == "success" for t in imaging)  # 4 groups, one fully flagged
    others = {t["hostname"] for t in api.task_instances(DAG_ID, run_id)}
    assert others <= set(cluster.worker_names), others  # every task ran on a Celery worker

    tries = _tries(api, run_id, victim["map_index"])
    first = next(t for t in tries if t["try_number"] == victim["try_number"])
    last = tries[-1]
    print("tries of the killed task:", [(t["try_number"], t["hostname"], t["state"]) for t in tries])
    assert first["hostname"] == dead and first["state"] in ("failed", "up_for_retry"), first
    assert last["try_number"] > first["try_number"]
    assert last["state"] == "success" and last["hostname"] == survivor, last

    def ts(v):
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()

    kill_utc = datetime.fromtimestamp(t_kill, timezone.utc).isoformat()
    print(f"killed at {kill_utc}; try {first['try_number']} marked failed at {first['end_date']} "
          f"({ts(first['end_date']) - t_kill:.0f} s later); retry started {last['start_date']} on {survivor}")
    out, ref_tree = serial_run
    assert out["errors"] == []
    assert_same_products(RunTree.for_run(FIELD_ID, run_id), ref_tree)
