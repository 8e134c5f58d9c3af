#!/usr/bin/env python3
"""Run the project's DAGs on an embedded Airflow (``airflow standalone``: SQLite + LocalExecutor).

All Airflow state lives under ``$AIRFLOW_HOME`` (the Makefile sets ``<project>/.airflow``); the
API server listens on ``$AIRFLOW__API__PORT`` (default 8080). Both are read when a function is
called, never at import, and every function takes them as arguments too. Talks to Airflow through
:mod:`scripts.airflow_api`.

    python -m scripts.airflow_local start          start standalone in its own process group, wait until healthy
    python -m scripts.airflow_local stop           stop it (the whole process group)
    python -m scripts.airflow_local run FIELD_ID   start if needed, trigger vlass_se_cube for FIELD_ID, wait
    python -m scripts.airflow_local login          print the UI address and the admin password
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ccip_ops.settings import imaging_slots
from scripts.airflow_api import AirflowApi, admin_password
from scripts.airflow_setup import airflow_bin, ensure_imaging_pool, run_airflow, wait_for

ROOT = Path(__file__).resolve().parent.parent


def home_of(env: dict | None = None) -> Path:
    """``$AIRFLOW_HOME`` (read when called), default ``<project>/.airflow``."""
    return Path((os.environ if env is None else env).get("AIRFLOW_HOME") or ROOT / ".airflow")


def port_of(env: dict | None = None) -> int:
    """The API server's port: ``$AIRFLOW__API__PORT`` (read when called), default 8080."""
    return int((os.environ if env is None else env).get("AIRFLOW__API__PORT") or 8080)


def base_url(port: int | None = None) -> str:
    return f"http://localhost:{port or port_of()}"


def api(home: Path | None = None, port: int | None = None) -> AirflowApi:
    """A client of the local Airflow, logged in as its admin (the password standalone generated)."""
    return AirflowApi(base_url(port), "admin", admin_password(home or home_of()))


def casa_threads(env: dict | None = None) -> int:
    """OpenMP threads per CASA task: ``$CCIP_CASA_THREADS`` (checked here, so a bad value stops the
    start instead of failing every task), default cores // imaging slots (at least 1), so that a full
    pool of tclean runs does not oversubscribe the cores (bench/README: tclean's own threads gain little)."""
    from ccip_ops.casa_env import casa_threads as explicit  # light: CASA itself is not imported

    env = env if env is not None else os.environ
    return explicit(env) or max(1, (os.cpu_count() or 1) // imaging_slots(env))


def start(timeout=180, home: Path | None = None, port: int | None = None, env: dict | None = None) -> None:
    """Start ``airflow standalone`` with its state in ``home`` and its API on ``port`` (default: from
    ``env``, else this process's environment), in its own process group: the database migrated and
    the ``casa_imaging`` pool set to ``CCIP_IMAGING_SLOTS`` first, so that the pool and the CASA
    threads per task agree from the first task; wait until healthy; create the API connection the
    sweep DAG uses. Nothing is done when an Airflow already answers on ``port``."""
    env = dict(os.environ if env is None else env)
    home, port = Path(home or home_of(env)), port or port_of(env)
    base = base_url(port)
    if AirflowApi(base).healthy():
        return
    home.mkdir(parents=True, exist_ok=True)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # it runs `airflow ...`
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__API__PORT"] = str(port)
    env.setdefault("AIRFLOW__API__BASE_URL", base)  # workers reach the execution API through it
    env["CCIP_CASA_THREADS"] = str(casa_threads(env))  # the task processes inherit it (ccip_ops.casa_env)
    run_airflow(["db", "migrate"], env, home / "db-migrate.log")
    ensure_imaging_pool(env, home / "pool.log")
    with open(home / "standalone.log", "ab") as log:
        p = subprocess.Popen([airflow_bin(), "standalone"], stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
    (home / "standalone.pid").write_text(str(p.pid))
    wait_for(AirflowApi(base).healthy, timeout, "airflow standalone", p, home / "standalone.log")
    api(home, port).ensure_connection()


def stop(home: Path | None = None) -> None:
    """Stop the standalone started in ``home`` (default ``$AIRFLOW_HOME``): its whole process group."""
    pidfile = Path(home or home_of()) / "standalone.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        return
    os.killpg(pgid, signal.SIGTERM)
    for _ in range(30):  # the scheduler ignores SIGTERM for a while
        time.sleep(1)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
    else:
        os.killpg(pgid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def run_field(field_id: str, conf: dict | None = None, timeout=7200) -> dict:
    start()
    client = api()
    client.wait_dag("vlass_se_cube")
    run_id = time.strftime("demo__%Y%m%dT%H%M%S", time.gmtime())
    code, out = client.trigger("vlass_se_cube", {"field_id": field_id, **(conf or {})}, run_id)
    if code not in (200, 201):
        raise RuntimeError(f"trigger refused ({code}): {out}")
    print(f"triggered vlass_se_cube run {run_id} for {field_id}; waiting ...", flush=True)
    run = client.wait_run("vlass_se_cube", run_id, timeout=timeout)
    tis = client.task_instances("vlass_se_cube", run_id)
    for ti in sorted(tis, key=lambda t: (t.get("start_date") or "", t["task_id"], t["map_index"])):
        name = ti["task_id"] + (f"[{ti.get('rendered_map_index') or ti['map_index']}]" if ti["map_index"] >= 0 else "")
        print(f"  {name:40s} {ti['state']}")
    return {"run_id": run_id, "state": run["state"]}


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "help"
    if cmd == "start":
        start()
        print(f"Airflow is up at {base_url()}")
    elif cmd == "stop":
        stop()
    elif cmd == "login":
        print(f"Airflow UI: {base_url()}  user: admin  password: {admin_password(home_of())}")
    elif cmd == "run":
        out = run_field(argv[2])
        print(json.dumps(out))
        return 0 if out["state"] == "success" else 1
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
