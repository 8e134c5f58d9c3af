#!/usr/bin/env python3
"""What the orchestration costs (issue 8, items 1-3): one field through a real Airflow against
``ccip run``, with k imaging slots, and the per-task overhead of the mapped imaging tasks.

Simulates a field once (default: the `tiny` preset, cached under bench/.work and
shared with imaging_scale.py), starts ``airflow standalone`` (SQLite + LocalExecutor) in its own
AIRFLOW_HOME on free ports (or the ones given), and then, ``--rounds`` times, in this order:

  serial   ``ccip run FIELD`` in one process (every stage, no Airflow): wall time of the process;
  k slots  for each k in ``--slots``: Airflow (re)started with pool ``casa_imaging`` of k slots and
           CCIP_CASA_THREADS = cores // k (as scripts/airflow_local.py sets it), the DAG triggered
           over the REST API; wall time from the trigger to the last task's end. The serial runs
           interleave with the first k's runs; later k's rounds follow.

Figures, each a ratio within one round, then the median over rounds:

  overhead     Airflow(k=1) / serial                       target <= 1.05
  efficiency   ideal(k) / Airflow(k), ideal(k) = the serial run's non-imaging time + the
               serial run's imaging group times spread over k slots (longest first)   target >= 0.9
  per task     for each mapped image_spw_group task: queued -> first tclean start and last
               tclean end -> task end (the REST task-instance records and the CASA call records
               of the group's result, which carry absolute start/end times)          target < 2 s

    python bench/orchestration.py [--preset tiny] [--nchan 4] [--rounds 3] [--slots 1 2]
                                  [--port 0] [--worker-log-port 0] [--trigger-log-port 0]
Writes bench/results/orchestration.json (another --preset/--nchan: orchestration_<preset>_nchan<N>.json). Airflow is stopped (its process group) at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from _common import ROOT, WORK, header, load, machine, median, now, table, write_result

from scripts import airflow_local
from scripts.airflow_setup import free_port

DAG = "vlass_se_cube"


def safe_run_id(run_id: str) -> str:
    from ccip_ops.naming import run_folder

    return run_folder(run_id)


def ts(s: str | None) -> float | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def ensure_field(preset: str, nchan: int | None, field_id: str) -> tuple[Path, Path]:
    """The archive holding the simulated field (shared with imaging_scale.py's layout)."""
    from ccip_ops.simulate import presets, simulate_field

    p = presets.get(preset, **({"nchan": nchan} if nchan else {}))
    default = presets.get(preset).nchan
    base = WORK if (preset == "tiny" and p.nchan == default) else \
        WORK / (f"nchan{p.nchan}" if preset == "tiny" else f"{preset}_nchan{p.nchan}")
    archive = base / "archive"
    if not (archive / field_id).exists():
        print(f"simulating {field_id} ({preset}, {p.nchan} chan/spw) into {archive} ...", flush=True)
        simulate_field(archive, field_id, p)
    return archive, base


def group_times(tree: Path) -> dict[str, dict]:
    """Per spw group: the imaging task's own wall time and its tclean start/end (absolute)."""
    out = {}
    for f in sorted((tree / "working" / "results").glob("*.json")):
        if f.name.endswith(".failed.json"):
            continue
        r = json.loads(f.read_text())
        tc = [c for c in r.get("tclean_calls", []) if c["task"] == "tclean"]
        out[r["target"]["label"]] = {
            "wall_s": r["qa"].get("wall_s"),
            "tclean_s": sum(c["wall_s"] for c in tc),
            "tclean_start": min((c["start_unix"] for c in tc if "start_unix" in c), default=None),
            "tclean_end": max((c["end_unix"] for c in tc if "end_unix" in c), default=None)}
    return out


def recover(a, bench_root: Path, field_id: str, serial_walls: dict[int, float]) -> list[dict]:
    """Rounds of an interrupted invocation from what it left on disk: the task-instance and dag-run
    records in Airflow's SQLite database (the trigger time is the run's queued_at), the run trees,
    and the serial wall times (given: they were only printed)."""
    import sqlite3

    db = sqlite3.connect(f"file:{bench_root / 'airflow' / 'airflow.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row

    def iso(v):
        return None if v is None else (str(v).replace(" ", "T") + ("" if "+" in str(v) else "+00:00"))

    rounds = []
    for i, wall in sorted(serial_walls.items()):
        run_id = f"serial_r{i}"
        tree = bench_root / "serial" / field_id / run_id
        groups = group_times(tree)
        imaging = sum(g["wall_s"] for g in groups.values())
        errors = [] if (tree / "products" / "pipeline_manifest.xml").exists() else ["no manifest"]
        rnd = {"round": i, "load_before": None, "recovered": True,
               "serial": {"run_id": run_id, "ok": not errors and wall is not None, "wall_s": wall, "errors": errors,
                          "imaging_s": imaging, "non_imaging_s": wall - imaging if wall is not None else None, "groups": groups, "stages": stage_seconds(tree)},
               "airflow": {}}
        for k in a.slots:
            run_id = f"bench_k{k}_r{i}"
            dr = db.execute("select * from dag_run where run_id=?", (run_id,)).fetchone()
            if dr is None:
                continue  # an unfinished run is kept: its finished tasks still give per-task figures
            tis = [{"task_id": r["task_id"], "map_index": r["map_index"], "rendered_map_index": r["rendered_map_index"],
                    "state": r["state"], "try_number": r["try_number"], "scheduled_when": iso(r["scheduled_dttm"]),
                    "queued_when": iso(r["queued_dttm"]), "start_date": iso(r["start_date"]),
                    "end_date": iso(r["end_date"])}
                   for r in db.execute("select * from task_instance where run_id=?", (run_id,))]
            run = {"state": dr["state"], "start_date": iso(dr["start_date"]), "end_date": iso(dr["end_date"])}
            rnd["airflow"][str(k)] = airflow_record(run_id, k, run, tis, ts(iso(dr["queued_at"])),
                                                    ts(iso(dr["end_date"])) or time.time(), bench_root / "airflow-runs",
                                                    field_id)
        rounds.append(rnd)
    return rounds


def presets_nchan(preset: str) -> int:
    from ccip_ops.simulate import presets

    return presets.get(preset).nchan


def stage_seconds(tree: Path) -> dict[str, float]:
    """Seconds of each stage inside its process (the run's stages.json), as the serial run took them."""
    f = tree / "working" / "stages.json"
    return {k: v["seconds"] for k, v in json.loads(f.read_text()).items()} if f.exists() else {}


def task_costs(serial: dict, r: dict) -> dict:
    """Per finished task of an Airflow run: its duration against the same stage (or spw group) in the
    serial process, and the idle time of the run (no task running: scheduling latency)."""
    ref = {**serial.get("stages", {}), **{f"image_spw_group[{k}]": g["wall_s"] for k, g in serial["groups"].items()}}
    rows, idle, last_end = [], 0.0, None
    for t in sorted((t for t in r["tasks"] if t["start"] and t["end"] and t["state"] == "success"),
                    key=lambda t: t["start"]):
        name = t["task"] + (f"[{t['label']}]" if t["map_index"] >= 0 else "")
        if last_end is not None and t["start"] > last_end:
            idle += t["start"] - last_end
        last_end = max(last_end or 0.0, t["end"])
        s = ref.get(name)
        rows.append({"task": name, "airflow_s": t["end"] - t["start"], "serial_s": s,
                     "extra_s": (t["end"] - t["start"] - s) if s is not None else None})
    return {"tasks": rows, "idle_between_tasks_s": idle,
            "extra_s_median": median(x["extra_s"] for x in rows)}


def lpt_makespan(times: list[float], k: int) -> float:
    """Longest-processing-time-first schedule of the group times over k slots."""
    slots = [0.0] * k
    for t in sorted(times, reverse=True):
        slots[slots.index(min(slots))] += t
    return max(slots)


def run_serial(archive: Path, work: Path, field_id: str, run_id: str, env: dict) -> dict:
    t0 = time.time()
    out = subprocess.run([str(Path(sys.executable).parent / "ccip"), "run", field_id, "--archive", str(archive),
                          "--work", str(work), "--run-id", run_id], capture_output=True, text=True, env=env)
    wall = time.time() - t0
    tree = work / field_id / safe_run_id(run_id)
    summary = {}
    try:
        summary = json.loads(out.stdout[out.stdout.rindex('{\n "run_tree"'):])
    except ValueError:
        pass
    groups = group_times(tree)
    imaging = sum(g["wall_s"] for g in groups.values())
    return {"run_id": run_id, "ok": out.returncode == 0, "wall_s": wall, "errors": summary.get("errors"),
            "imaging_s": imaging, "non_imaging_s": wall - imaging, "groups": groups, "stages": stage_seconds(tree),
            "stderr_tail": out.stderr[-1500:] if out.returncode else ""}


def run_airflow(api, work: Path, field_id: str, run_id: str, k: int) -> dict:
    """One run triggered over REST on the Airflow started with a pool of k slots."""
    t0 = time.time()
    code, out = api.trigger(DAG, {"field_id": field_id}, run_id)
    if code not in (200, 201):
        raise RuntimeError(f"trigger refused ({code}): {out}")
    run = api.wait_run(DAG, run_id, timeout=7200, poll=1)
    seen = time.time()
    return airflow_record(run_id, k, run, api.task_instances(DAG, run_id), t0, seen, work, field_id)


def airflow_record(run_id: str, k: int, run: dict, tis: list[dict], t0: float, seen: float, work: Path,
                   field_id: str) -> dict:
    """One Airflow run's figures from its dag-run and task-instance records (REST field names)."""
    ends = [ts(t["end_date"]) for t in tis if t.get("end_date")]
    wall = (max(ends) if ends else seen) - t0
    tree = work / field_id / safe_run_id(run_id)
    groups = group_times(tree)
    tasks = []
    for t in tis:
        rec = {"task": t["task_id"], "map_index": t["map_index"], "label": t.get("rendered_map_index"),
               "state": t["state"], "try": t.get("try_number"), "scheduled": ts(t.get("scheduled_when")),
               "queued": ts(t.get("queued_when")), "start": ts(t.get("start_date")), "end": ts(t.get("end_date"))}
        if t["task_id"] == "image_spw_group":
            g = groups.get(rec["label"] or "", {})
            if g.get("tclean_start") and rec["queued"] and rec["end"]:
                rec.update({"tclean_start": g["tclean_start"], "tclean_end": g["tclean_end"],
                            "scheduled_to_queued_s": rec["queued"] - rec["scheduled"] if rec["scheduled"] else None,
                            "queued_to_start_s": rec["start"] - rec["queued"],
                            "start_to_tclean_s": g["tclean_start"] - rec["start"],
                            "queued_to_tclean_s": g["tclean_start"] - rec["queued"],
                            "tclean_to_end_s": rec["end"] - g["tclean_end"]})
        tasks.append(rec)
    busy = sum(t["end"] - t["start"] for t in tasks if t["start"] and t["end"])
    return {"run_id": run_id, "slots": k, "state": run["state"], "ok": run["state"] == "success",
            "wall_s": wall, "run_start_to_end_s": (ts(run.get("end_date")) or seen) - (ts(run.get("start_date")) or t0),
            "sum_task_durations_s": busy, "tasks": tasks}


IMPORTS = r"""
import json, time
from ccip_ops import casa_env
casa_env.ensure()
t0 = time.perf_counter(); import casatools
t1 = time.perf_counter(); import casatasks
t2 = time.perf_counter()
print(json.dumps({"casatools_s": t1 - t0, "casatasks_s": t2 - t1}))
"""


def casa_import_cost(repeats: int = 3) -> dict:
    """What every CASA task process pays before its first CASA call: importing casatools and
    casatasks (which imports every task, scipy and matplotlib) in a fresh interpreter. A task
    forked by Airflow's supervisor inherits Airflow, not CASA. Medians of ``repeats``."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, cwd=str(WORK))
        if out.returncode == 0:
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if not runs:
        return {}
    med = {k: median(r[k] for r in runs) for k in runs[0]}
    med["total_s"] = med["casatools_s"] + med["casatasks_s"]
    med["repeats"] = len(runs)
    return med


def summarise(a, m, l0, l1, field_id, rounds, t_start, complete, threads=None) -> dict:
    # ratios within each round, then medians over the rounds
    per_round = []
    rounds = [r for r in rounds if "serial" in r]
    for rnd in rounds:
        s = rnd["serial"]
        gt = [g["wall_s"] for g in s["groups"].values()]
        x = {"round": rnd["round"], "serial_s": s["wall_s"]}
        for k, r in rnd["airflow"].items():
            known = s["ok"] and s["non_imaging_s"] is not None
            ideal = s["non_imaging_s"] + lpt_makespan(gt, int(k)) if known else None
            x[f"airflow_k{k}_s"] = r["wall_s"]
            x[f"ideal_k{k}_s"] = ideal
            x[f"ideal_even_k{k}_s"] = s["non_imaging_s"] + s["imaging_s"] / int(k) if known else None
            x[f"efficiency_k{k}"] = ideal / r["wall_s"] if r["ok"] and s["ok"] else None
            x[f"ratio_k{k}_serial"] = r["wall_s"] / s["wall_s"] if r["ok"] and s["ok"] else None
            tc = task_costs(s, r)
            x[f"idle_k{k}_s"] = tc["idle_between_tasks_s"]
            x[f"task_extra_k{k}_s"] = tc["extra_s_median"]
            r["task_costs"] = tc
        per_round.append(x)
    keys = sorted({k for x in per_round for k in x if k != "round"})
    med = {k: median(x.get(k) for x in per_round) for k in keys}
    pt = [t for rnd in rounds for r in rnd["airflow"].values() for t in r["tasks"] if "queued_to_tclean_s" in t]
    per_task = {f: {"median": median(t[f] for t in pt), "max": max((t[f] for t in pt if t[f] is not None), default=None)}
                for f in ("scheduled_to_queued_s", "queued_to_start_s", "start_to_tclean_s", "queued_to_tclean_s",
                          "tclean_to_end_s")} if pt else {}
    ngroups = len(rounds[0]["serial"]["groups"]) if rounds else 0
    result = {"benchmark": "orchestration", "when": now(), "machine": m, "load_before": l0, "load_after": l1,
              "field": {"field_id": field_id, "preset": a.preset, "nchan_per_spw": a.nchan or presets_nchan(a.preset), "spw_groups_imaged": ngroups},
              "airflow": {"mode": "airflow standalone (SQLite, LocalExecutor)", "worker_slots": "pool casa_imaging slots=k",
                          "casa_threads_per_task": {str(k): v for k, v in (threads or {}).items()},
                          "serial_casa_threads": "CASA default (every core)"},
              "rounds_requested": a.rounds, "rounds_done": len(rounds), "slots": a.slots, "elapsed_s": time.time() - t_start,
              "per_round": per_round, "median": med, "per_task_overhead": per_task,
              "targets": {"overhead_ratio_max": 1.05, "efficiency_min": 0.9, "per_task_s_max": 2.0},
              "raw": rounds}
    result["complete"] = complete
    return result


def result_name(a) -> str:
    """bench/results/orchestration.json for the default field; another field keeps its own file."""
    if a.preset == "tiny" and a.nchan in (None, presets_nchan("tiny")):
        return "orchestration"
    return f"orchestration_{a.preset}_nchan{a.nchan or presets_nchan(a.preset)}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--nchan", type=int, default=None, help="channels per spw of the simulated field "
                    "(default: the preset's; more channels, more visibilities, longer imaging)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--port", type=int, default=0, help="Airflow API port (0: a free one)")
    ap.add_argument("--worker-log-port", type=int, default=0)
    ap.add_argument("--trigger-log-port", type=int, default=0)
    ap.add_argument("--recover", nargs="+", metavar="ROUND=SERIAL_S",
                    help="summarise an interrupted invocation from its Airflow database and run trees, "
                         "with the serial wall times it printed, e.g. 0=1234.5 (0= if that run did not end)")
    a = ap.parse_args()
    from ccip_ops.simulate import DEFAULT_FIELD_ID as field_id

    m, l0 = machine(), load()
    if a.recover:
        walls = {int(x.split("=")[0]): float(x.split("=")[1]) if x.split("=")[1] else None for x in a.recover}
        rounds = recover(a, WORK / "orchestration", field_id, walls)
        result = summarise(a, m, l0, load(), field_id, rounds, time.time(), False)
        result["recovered_from_interrupted_run"] = True
        print(json.dumps({"median": result["median"], "per_task_overhead": result["per_task_overhead"]}, indent=1))
        print(f"wrote {write_result(result_name(a), result)}")
        return 0
    archive, base = ensure_field(a.preset, a.nchan, field_id)
    bench_root = WORK / "orchestration"
    shutil.rmtree(bench_root, ignore_errors=True)  # every invocation starts clean
    home, runs_serial, runs_af = bench_root / "airflow", bench_root / "serial", bench_root / "airflow-runs"
    for d in (home, runs_serial, runs_af):
        d.mkdir(parents=True)
    casa_dir = os.environ.get("CCIP_CASA_DIR", str(ROOT / ".casa"))
    port = a.port or free_port()
    # tasks reach the API server's execution API at [api] base_url: without it they call
    # localhost:8080, which is not ours (or is someone else's Airflow)
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(a.worker_log_port or free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(a.trigger_log_port or free_port()),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "CCIP_ARCHIVE_ROOT": str(archive), "CCIP_WORK_ROOT": str(runs_af), "CCIP_CASA_DIR": casa_dir,
           "PYTHONUNBUFFERED": "1"}
    serial_env = {k: v for k, v in os.environ.items() if k not in ("CCIP_CASA_THREADS", "OMP_NUM_THREADS")}
    serial_env["CCIP_WORK_ROOT"] = str(runs_serial)  # serial: CASA's default threads (every core)
    env = {**{k: v for k, v in os.environ.items() if k != "CCIP_CASA_THREADS"}, **env}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop Airflow in `finally` on a kill too
    rounds = [{"round": i, "airflow": {}} for i in range(a.rounds)]
    threads = {}
    t_start = time.time()
    try:
        # one Airflow start per k: the pool is made with k slots and its task processes inherit
        # CCIP_CASA_THREADS = cores // k (what airflow_local.start sets for a pool of k), so k tcleans
        # at once do not oversubscribe
        for j, k in enumerate(a.slots):
            env_k = {**env, "CCIP_IMAGING_SLOTS": str(k)}
            threads[k] = airflow_local.casa_threads(env_k)
            print(f"starting airflow standalone (AIRFLOW_HOME={home}, port {port}, pool {k}, "
                  f"{threads[k]} CASA thread(s) per task) ...", flush=True)
            airflow_local.start(timeout=300, home=home, port=port, env=env_k)
            api = airflow_local.api(home, port)
            api.wait_dag(DAG, timeout=300)
            for i, rnd in enumerate(rounds):
                if j == 0:
                    rnd["load_before"] = load()
                    rnd["serial"] = run_serial(archive, runs_serial, field_id, f"serial_r{i}", serial_env)
                    print(f"round {i}: serial {rnd['serial']['wall_s']:.1f} s (ok={rnd['serial']['ok']})", flush=True)
                r = run_airflow(api, runs_af, field_id, f"bench_k{k}_r{i}", k)
                r["casa_threads"] = threads[k]
                rnd["airflow"][str(k)] = r
                print(f"round {i}: airflow k={k} {r['wall_s']:.1f} s ({r['state']})", flush=True)
                rnd["load_after"] = load()
                # keep what is done: an interrupted benchmark leaves its finished runs (complete: false)
                write_result(result_name(a), summarise(a, m, l0, load(), field_id, rounds, t_start, False, threads))
            airflow_local.stop(home)
    finally:
        airflow_local.stop(home)
    l1 = load()
    result = summarise(a, m, l0, l1, field_id, rounds, t_start, True, threads)
    result["casa_import_per_task"] = casa_import_cost()
    per_round, med, per_task, ngroups = (result["per_round"], result["median"], result["per_task_overhead"],
                                         result["field"]["spw_groups_imaged"])
    print(header(f"orchestration: field {field_id} ({a.preset}, {a.nchan or presets_nchan(a.preset)} chan/spw, {ngroups} spw groups), "
                 f"medians of {a.rounds} rounds", m, l0, l1))
    head = ["round", "load1", "serial s"] + [c for k in a.slots for c in (f"airflow k={k} s", f"ideal k={k} s",
                                                                           f"eff k={k}")]
    rows = []
    for x, rnd in zip(per_round, rounds):
        row = [x["round"], rnd["load_before"]["load1"], f"{x['serial_s']:.1f}"]
        for k in a.slots:
            if f"airflow_k{k}_s" not in x:
                row += ["-", "-", "-"]
                continue
            e = x[f"efficiency_k{k}"]
            row += [f"{x[f'airflow_k{k}_s']:.1f}", f"{x[f'ideal_k{k}_s']:.1f}", f"{e:.2f}" if e else "failed"]
        rows.append(row)
    print(table(tuple(head), rows))
    if med:
        r1 = med.get("ratio_k1_serial")
        print(f"overhead Airflow(k=1)/serial: median {r1:.3f} (target <= 1.05)" if r1 else "overhead: no successful round")
        for k in a.slots:
            e = med.get(f"efficiency_k{k}")
            if e:
                print(f"parallel efficiency k={k}: median {e:.2f} of ideal (target >= 0.9)")
    if per_task:
        print(table(("per mapped imaging task", "median s", "max s"),
                    [(f, f"{v['median']:.2f}" if v["median"] is not None else "-",
                      f"{v['max']:.2f}" if v["max"] is not None else "-") for f, v in per_task.items()]))
    ci = result["casa_import_per_task"]
    if ci:
        print(f"CASA import in a fresh task process: casatools {ci['casatools_s']:.2f} s + casatasks "
              f"{ci['casatasks_s']:.2f} s = {ci['total_s']:.2f} s (median of {ci['repeats']})")
    print(f"wrote {write_result(result_name(a), result)}")
    done = len(rounds) == a.rounds and all(len(r["airflow"]) == len(a.slots) for r in rounds)
    return 0 if done and all(r["serial"]["ok"] and all(x["ok"] for x in r["airflow"].values()) for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
