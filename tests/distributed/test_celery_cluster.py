"""vlass_se_cube on a distributed Airflow: CeleryExecutor, PostgreSQL metadata DB, Redis broker,
api-server, scheduler, dag-processor, triggerer and four Celery workers of one slot each as
separate processes on loopback (scripts/airflow_cluster.py), on the tiny field.

One run of the field, with the drills of issue 16 in it:

- the ``casa_imaging`` pool, asked for all four worker slots, is capped to three (one slot always
  free for other tasks); the field's three mapped imaging tasks run at once, each on its worker;
- (a) while they hold every imaging slot, a second run of the field is triggered: its first stages
  (stage_inputs with its MS copy, editimlist_seip) run on the free slot instead of starving in
  queued, and it is then marked failed (its restore and imaging are not needed here);
- one imaging worker is SIGKILLed with everything it started, once its try has completed iter0; the
  scheduler notices the dead task (heartbeat timeout, 45 s here) and its retry, on another worker,
  resumes after that step;
- (c) a second imaging worker is frozen (SIGSTOP, a hung host: its try becomes a zombie the
  scheduler gives up on);
- (b) while the third imaging task runs, the API server is stopped for 30 s, longer than a task
  token lives (shortened to 5 s + 10 s leeway here): Airflow ends that try when its token is
  refused, and the group's next try resumes from its checkpoint or takes its finished result;
- (c) once the frozen group's retry has started the worker is thawed: the zombie try stops at its
  next step and overwrites nothing;
- the fan-in tasks hold two imaging slots each and work on two groups at once (``CCIP_FANIN_SLOTS=2``);
- the run completes with products equal to the embedded run's (the serial_run fixture, one group
  at a time) file for file, pixel for pixel, and each group's accepted result is its last try's.

Skips only when PostgreSQL's or Redis's server binaries are missing (.ci/run installs them).
"""
from __future__ import annotations

import importlib.util
import json
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from scripts import airflow_cluster as ac

ROOT = Path(__file__).resolve().parents[2]
TEST_HOME = ROOT / ".airflow-test"
FIELD_ID = "T10t02.J005000-023000"
DAG_ID = "vlass_se_cube"
HEARTBEAT_TIMEOUT_S = 45
OUTAGE_S = 30  # > the task token's 5 s + 10 s leeway, < the heartbeat timeout


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
    # four one-slot workers; the imaging pool asks for all four slots and is capped to three. Task
    # tokens live 5 s (+ Airflow's 10 s leeway) instead of the deployment's hour, so that an API-server
    # outage of OUTAGE_S outlives them while staying shorter than the heartbeat timeout
    with ac.Cluster(n_workers=4, heartbeat_timeout=HEARTBEAT_TIMEOUT_S, imaging_slots=4,
                    extra_env={"CCIP_WORKER_SLOTS": "4", "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "5",
                               # the fan-in tasks hold two imaging slots each and work on two groups at once
                               "CCIP_FANIN_SLOTS": "2"},
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


def _ts(v: str | None) -> float:
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() if v else float("inf")


def _label(tree, map_index: int) -> str:
    """A mapped imaging task's spw group label (``rendered_map_index`` is only the index while the
    task runs): the targets of editimlist_ccip, in map-index order."""
    return json.loads(tree.targets_json.read_text())["targets"][int(map_index)]["label"]


def _ti(api, run_id, task_id):
    return next((t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == task_id), {})


def test_run_survives_a_killed_and_a_frozen_worker_and_never_starves_other_runs(cluster, serial_run):
    """The drills above in one run (one run rather than several keeps the suite's time down)."""
    from ccip_ops import tries
    from ccip_ops.runtree import RunTree, read_json
    from ccip_ops.settings import IMAGING_POOL

    api, run_id, other = cluster.rest, "dist__run", "dist__other"
    code, pool = api.get(f"/api/v2/pools/{IMAGING_POOL}")
    assert code == 200 and pool["slots"] == 3, pool  # CCIP_IMAGING_SLOTS=4 capped: 4 worker slots less 1 kept
    alive = [n for n in cluster.worker_names if cluster.alive(n)]
    assert len(alive) == 4
    code, out = api.trigger(DAG_ID, {"field_id": FIELD_ID}, run_id)
    assert code in (200, 201), out
    t0 = time.time()
    running = {}
    while time.time() - t0 < 3600 and len(running) < 3:
        running = {t["hostname"]: t for t in _imaging(api, run_id)
                   if t["state"] == "running" and t.get("hostname") in alive}
        state = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")[1].get("state")
        assert state not in ("success", "failed"), "the run ended before its imaging tasks ran at once: " \
            + _diagnose(cluster, api, run_id)
        if len(running) < 3:
            time.sleep(1)
    assert len(running) == 3, "imaging never ran on three workers at once: " + _diagnose(cluster, api, run_id)
    print("\nimaging at once on:", {h: t["rendered_map_index"] for h, t in running.items()})

    # (a) every imaging slot is held: another run's first stages must still get a worker
    code, out = api.trigger(DAG_ID, {"field_id": FIELD_ID}, other)
    assert code in (200, 201), out
    dead, frozen, busy = sorted(running)
    victim, zombie, third = running[dead], running[frozen], running[busy]
    tree = RunTree.for_run(FIELD_ID, run_id)
    victim_ck = tree.working / "tries" / _label(tree, victim["map_index"]) / f"try{victim['try_number']}" / tries.CHECKPOINT
    t_ck = time.time()
    while not victim_ck.exists() and time.time() - t_ck < 60:  # let the victim complete a step (iter0)
        time.sleep(0.2)
    killed_after_a_step = victim_ck.exists()
    t_kill = time.time()
    cluster.kill_group(dead)  # SIGKILL: the worker, its pool, the task supervisor and the task runner
    assert not cluster.alive(dead)
    # a hung host: the scheduler stops hearing from its try; the task's own process groups (the task
    # runner and its CASA, apart from the Celery worker's group) are watched until they end below
    task_groups = cluster.signal_tree(frozen, signal.SIGSTOP) - {cluster.procs[frozen].pid}
    assert task_groups, "the frozen worker runs no task process"
    print(f"killed {dead} while it ran image_spw_group[{_label(tree, victim['map_index'])}] try "
          f"{victim['try_number']} ({'after' if killed_after_a_step else 'before'} its iter0 completed); "
          f"froze {frozen} while it ran image_spw_group[{_label(tree, zombie['map_index'])}] try {zombie['try_number']}; "
          f"{t_kill - t0:.0f} s into the run")

    first_stages = ("stage_inputs", "editimlist_seip")  # then it is stopped: its restore is not needed here
    t1 = time.time()
    while time.time() - t1 < 900:
        states = {s: _ti(api, other, s).get("state") for s in first_stages}
        if all(v == "success" for v in states.values()) or "failed" in states.values():
            break
        time.sleep(2)
    assert all(v == "success" for v in states.values()), (states, _diagnose(cluster, api, other))
    code, out = api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{other}", {"state": "failed"})  # not needed further
    assert code == 200, out
    started = _ts(_ti(api, other, "stage_inputs")["start_date"])

    # (b) the API server is down for longer than a task token lives, while an imaging try runs: its
    # token cannot be renewed after the outage, so Airflow ends the try; its group must not start over
    target, t4 = None, time.time()
    while target is None and time.time() - t4 < 1200:
        imaging = _imaging(api, run_id)
        gone = {(victim["map_index"], victim["try_number"]), (zombie["map_index"], zombie["try_number"])}
        target = next((t for t in imaging if t["state"] == "running" and (t["map_index"], t["try_number"]) not in gone
                       # and with a completed step to lose
                       and list((tree.working / "tries" / _label(tree, t["map_index"])).glob(f"try*/{tries.CHECKPOINT}"))),
                      None)
        assert target or not all(t["state"] == "success" for t in imaging), "no imaging try left for the outage"
        time.sleep(0.5)
    assert target, _diagnose(cluster, api, run_id)
    cluster.outage("api-server")
    t_out = time.time()
    time.sleep(OUTAGE_S)
    cluster.restart("api-server")
    print(f"API server down {time.time() - t_out:.0f} s while image_spw_group[{_label(tree, target['map_index'])}] "
          f"try {target['try_number']} ran")

    # (c) thaw the frozen worker once its group's retry has taken over: its try is now a zombie
    t2 = time.time()
    while time.time() - t2 < 1800:
        later = [t for t in _tries(api, run_id, zombie["map_index"]) if t["try_number"] > zombie["try_number"]]
        if later and later[-1]["state"] in ("running", "success"):
            break
        time.sleep(2)
    assert later, _diagnose(cluster, api, run_id)
    cluster.signal_tree(frozen, signal.SIGCONT)
    print(f"thawed {frozen} {time.time() - t_kill:.0f} s after the freeze, retry {later[-1]['try_number']} "
          f"{later[-1]['state']} on {later[-1]['hostname']}")

    run = api.wait_run(DAG_ID, run_id, timeout=3600)
    print(f"run: {run['state']} in {time.time() - t0:.0f} s")
    assert run["state"] == "success", _diagnose(cluster, api, run_id)

    # (a) the other run's first task started while the three imaging tries held the pool's three slots
    held = [next(x for x in _tries(api, run_id, t["map_index"]) if x["try_number"] == t["try_number"])
            for t in (victim, zombie, third)]
    assert all(_ts(t["start_date"]) <= started < _ts(t["end_date"]) for t in held), \
        (started, [(t["start_date"], t["end_date"]) for t in held])

    # the fan-in worked on two groups at once in each task (spawned group workers inside a Celery
    # task), holding two slots of the pool; its products are compared with the serial run's below
    for step in ("pbcor", "rmsimages", "cutouts", "export"):
        ti = _ti(api, run_id, step)
        assert ti["pool_slots"] == 2, (step, ti)
        assert "2 processes at once" in api.task_log(DAG_ID, run_id, step, ti["try_number"]), step

    imaging = _imaging(api, run_id)
    assert len(imaging) == 3 and all(t["state"] == "success" for t in imaging)  # 4 groups, one fully flagged
    hosts = {t["hostname"] for t in api.task_instances(DAG_ID, run_id)}
    assert hosts <= set(cluster.worker_names), hosts  # every task ran on a Celery worker

    # (b) the group of the outage: a later try completed it from where the interrupted one had got to
    label = _label(tree, target["map_index"])
    got = read_json(tree.result_json(label))["qa"]["try"]
    print(f"image_spw_group[{label}] after the outage:", got)
    assert got["number"] > target["try_number"], got
    assert got.get("resumed_from") or got.get("adopted_from"), f"the group started over: {got}"
    log = api.task_log(DAG_ID, run_id, "image_spw_group", got["number"], target["map_index"])
    assert "resuming from try" in log or "was not recorded as a success" in log, log[-3000:]

    if killed_after_a_step:  # the killed try had completed iter0: its retry went on from there
        got = read_json(tree.result_json(_label(tree, victim["map_index"])))["qa"]["try"]
        assert got.get("resumed_from") or got.get("adopted_from"), got
    for ti, host in ((victim, dead), (zombie, frozen)):
        tries_ = _tries(api, run_id, ti["map_index"])
        first = next(t for t in tries_ if t["try_number"] == ti["try_number"])
        last = tries_[-1]
        print(f"tries of image_spw_group[{_label(tree, ti['map_index'])}]:",
              [(t["try_number"], t["hostname"], t["state"]) for t in tries_])
        assert first["hostname"] == host and first["state"] in ("failed", "up_for_retry"), first
        assert last["try_number"] > first["try_number"] and last["state"] == "success", last
        assert next(t for t in tries_ if t["try_number"] == first["try_number"] + 1)["hostname"] != host
        # the accepted result and the images are the last try's: the owner record names it, and
        # the result carries its token
        label = _label(tree, ti["map_index"])
        owner = tries.owner(tree, label)
        result = read_json(tree.result_json(label))
        assert owner["try"] == last["try_number"], owner
        assert tries.token_of(result) == owner["token"], json.dumps(result.get("qa", {}))[:500]

    # the zombie try ends (its supervisor is told that the try no longer runs, or its next step finds
    # that a later try owns the group) without touching the accepted results: checked after it ended
    t3 = time.time()
    while time.time() - t3 < 300 and any(ac._group_alive(g) for g in task_groups):
        time.sleep(2)
    assert not any(ac._group_alive(g) for g in task_groups), "the zombie try still runs 5 min after the thaw"
    for ti in (victim, zombie):
        label = _label(tree, ti["map_index"])
        assert tries.token_of(read_json(tree.result_json(label))) == tries.owner(tree, label)["token"]
    out, ref_tree = serial_run
    assert out["errors"] == []
    assert_same_products(tree, ref_tree)
