#!/usr/bin/env python3
"""Run the project's DAGs on an embedded Airflow (``airflow standalone``: SQLite + LocalExecutor).

All Airflow state lives under ``$AIRFLOW_HOME`` (the Makefile sets ``<project>/.airflow``).
Talks to Airflow over its REST API (``/api/v2``, JWT from ``/auth/token``), stdlib only.

    airflow_local.py start            start standalone in its own process group, wait until healthy
    airflow_local.py stop             stop it (the whole process group)
    airflow_local.py run FIELD_ID     start if needed, trigger vlass_se_cube for FIELD_ID, wait, report
    airflow_local.py login            print the UI address and the admin password
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOME = Path(os.environ.get("AIRFLOW_HOME", Path(__file__).resolve().parent.parent / ".airflow"))
PORT = int(os.environ.get("AIRFLOW__API__PORT", "8080"))
BASE = f"http://localhost:{PORT}"
PIDFILE = HOME / "standalone.pid"
LOG = HOME / "standalone.log"
API_CONN_ID = "ccip_airflow_api"  # the sweep DAG (vlass_se_cube_reprocess) calls the REST API with it


def free_port() -> int:
    """A free TCP port on loopback (for an Airflow that must not clash with a user's 8080)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str = BASE, user: str = "admin", password: str | None = None, home: Path = HOME):
        self.base = base
        self.user = user
        self.password = password or admin_password(home)
        self.token = None

    def _req(self, method: str, path: str, body=None, auth=True, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            if self.token is None:
                self.login()
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                ctype = r.headers.get("Content-Type", "")
                return r.status, (json.loads(raw) if raw and "json" in ctype else raw.decode(errors="replace"))
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except Exception:
                return e.code, raw.decode(errors="replace")

    def login(self):
        code, out = self._req("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
        if code not in (200, 201):
            raise RuntimeError(f"login failed ({code}): {out}")
        self.token = out["access_token"]

    def get(self, path):
        return self._req("GET", path)

    def post(self, path, body):
        return self._req("POST", path, body)

    def patch(self, path, body):
        return self._req("PATCH", path, body)

    def ensure_pool(self, name="casa_imaging", slots=None, description="CASA imaging tasks (one tclean each)"):
        slots = slots or imaging_slots()
        code, cur = self.get(f"/api/v2/pools/{name}")
        if code == 200:  # Airflow 3.3's PATCH wants the whole body, include_deferred too
            return self.patch(f"/api/v2/pools/{name}", {"name": name, "slots": slots, "description": description,
                                                        "include_deferred": bool(cur.get("include_deferred"))})
        return self.post("/api/v2/pools", {"name": name, "slots": slots, "description": description,
                                           "include_deferred": False})

    def ensure_api_connection(self, conn_id: str = API_CONN_ID):
        """The connection through which DAG tasks (the archive sweep) call this Airflow's REST API."""
        from urllib.parse import urlsplit

        u = urlsplit(self.base)
        body = {"connection_id": conn_id, "conn_type": "http", "host": u.hostname, "port": u.port,
                "schema": u.scheme, "login": self.user, "password": self.password,
                "description": "this Airflow's REST API, for the archive sweep"}
        code, _ = self.get(f"/api/v2/connections/{conn_id}")
        if code == 200:
            return self.patch(f"/api/v2/connections/{conn_id}", body)
        return self.post("/api/v2/connections", body)

    def delete(self, path):
        return self._req("DELETE", path)

    def clear_task(self, dag_id, run_id, task_id, map_index=-1, downstream=True):
        """Clear one (mapped) task instance and, by default, everything downstream of it."""
        return self.post(f"/api/v2/dags/{dag_id}/clearTaskInstances",
                         {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True,
                          "task_ids": [[task_id, map_index] if map_index >= 0 else task_id],
                          "include_downstream": downstream, "include_upstream": False})

    def task_log(self, dag_id, run_id, task_id, try_number=1, map_index=-1) -> str:
        code, out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                             f"?full_content=true&map_index={map_index}")
        if not isinstance(out, dict):
            return str(out)
        lines = []
        for e in out.get("content", []):
            if not isinstance(e, dict):
                lines.append(str(e))
                continue
            extra = {k: v for k, v in e.items() if k not in ("event", "timestamp", "level", "logger")}
            lines.append(str(e.get("event", "")) + (f"  {json.dumps(extra, default=str)}" if extra else ""))
        return "\n".join(lines)

    def wait_dag(self, dag_id, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            code, out = self.get(f"/api/v2/dags/{dag_id}")
            if code == 200:
                if out.get("is_paused"):
                    self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return out
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} did not appear within {timeout} s")

    def trigger(self, dag_id, conf: dict, run_id: str | None = None):
        body = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self.post(f"/api/v2/dags/{dag_id}/dagRuns", body)

    def wait_run(self, dag_id, run_id, timeout=3600, poll=3):
        t0 = time.time()
        while time.time() - t0 < timeout:
            code, out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if code == 200 and out["state"] in ("success", "failed"):
                return out
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} not finished within {timeout} s")

    def task_instances(self, dag_id, run_id):
        code, out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        return out.get("task_instances", []) if code == 200 else []


def admin_password(home: Path = HOME) -> str:
    f = Path(home) / "simple_auth_manager_passwords.json.generated"
    for _ in range(60):
        if f.exists():
            return json.loads(f.read_text())["admin"]
        time.sleep(1)
    raise RuntimeError(f"{f} was not written: is Airflow standalone running with AIRFLOW_HOME={HOME}?")


def healthy(base: str = BASE) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/v2/monitor/health", timeout=5) as r:
            h = json.loads(r.read())
        return all(h.get(k, {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor"))
    except Exception:
        return False


def imaging_slots(env: dict | None = None) -> int:
    """Size of the casa_imaging pool: ``$CCIP_IMAGING_SLOTS``, default one per core."""
    return int((env if env is not None else os.environ).get("CCIP_IMAGING_SLOTS") or os.cpu_count() or 2)


def casa_threads(env: dict | None = None) -> int:
    """OpenMP threads per CASA task: ``$CCIP_CASA_THREADS`` (checked here, so a bad value stops the
    start instead of failing every task), default cores // imaging slots (at least 1), so that a full
    pool of tclean runs does not oversubscribe the cores (bench/README: tclean's own threads gain little)."""
    from ccip_ops.casa_env import casa_threads as explicit  # light: CASA itself is not imported

    env = env if env is not None else os.environ
    return explicit(env) or max(1, (os.cpu_count() or 1) // imaging_slots(env))


def start(timeout=180, home: Path = HOME, port: int = PORT, env: dict | None = None) -> None:
    """Start ``airflow standalone`` with its state in ``home`` and its API on ``port``, in its own
    process group; wait until healthy; create the API connection the sweep DAG uses."""
    base = f"http://localhost:{port}"
    if healthy(base):
        return
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = dict(env if env is not None else os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")  # standalone runs `airflow ...` children
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__API__PORT"] = str(port)
    env.setdefault("AIRFLOW__API__BASE_URL", base)  # workers reach the execution API through it
    env["CCIP_CASA_THREADS"] = str(casa_threads(env))  # the task processes inherit it (ccip_ops.casa_env)
    with open(home / "standalone.log", "ab") as log:
        p = subprocess.Popen([str(Path(venv_bin) / "airflow"), "standalone"], stdout=log, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
    (home / "standalone.pid").write_text(str(p.pid))
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {p.returncode}; see {home / 'standalone.log'}")
        if healthy(base):
            Api(base, home=home).ensure_api_connection()
            return
        time.sleep(2)
    raise TimeoutError(f"Airflow not healthy after {timeout} s; see {home / 'standalone.log'}")


def stop(home: Path = HOME) -> None:
    pidfile = Path(home) / "standalone.pid"
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
    api = Api()
    api.ensure_pool()
    api.wait_dag("vlass_se_cube")
    run_id = time.strftime("demo__%Y%m%dT%H%M%S", time.gmtime())
    code, out = api.trigger("vlass_se_cube", {"field_id": field_id, **(conf or {})}, run_id)
    if code not in (200, 201):
        raise RuntimeError(f"trigger refused ({code}): {out}")
    print(f"triggered vlass_se_cube run {run_id} for {field_id}; waiting ...", flush=True)
    run = api.wait_run("vlass_se_cube", run_id, timeout=timeout)
    tis = api.task_instances("vlass_se_cube", run_id)
    for ti in sorted(tis, key=lambda t: (t.get("start_date") or "", t["task_id"], t["map_index"])):
        name = ti["task_id"] + (f"[{ti.get('rendered_map_index') or ti['map_index']}]" if ti["map_index"] >= 0 else "")
        print(f"  {name:40s} {ti['state']}")
    return {"run_id": run_id, "state": run["state"]}


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "help"
    if cmd == "start":
        start()
        print(f"Airflow is up at {BASE}")
    elif cmd == "stop":
        stop()
    elif cmd == "login":
        print(f"Airflow UI: {BASE}  user: admin  password: {admin_password()}")
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
