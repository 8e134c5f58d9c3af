"""The one client of Airflow's REST API (``/api/v2``) in this project: standard library only.

Used by the embedded and the cluster drivers (:mod:`scripts.airflow_local`,
:mod:`scripts.airflow_cluster`), the archive sweep DAG (inside its task, through the Airflow
connection ``ccip_airflow_api``: :meth:`AirflowApi.from_connection`), the tests and the
benchmarks. It logs in with a user and password (``POST /auth/token``, the JWT sent as a Bearer
token, logging in again once when a token has expired) and also reads the pages that plugins
serve on the same server (:meth:`AirflowApi.fetch`).

Two styles, on purpose: :meth:`request` (and ``get``/``post``/``patch``/``delete``) return
``(status, body)`` for callers that look at refusals (the tests), :meth:`call` raises
:class:`ApiError` on anything but 2xx (the sweep: a failed call fails the task).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

# the components ``GET /api/v2/monitor/health`` reports; a standalone's triggerer is not waited for
CORE_COMPONENTS = ("metadatabase", "scheduler", "dag_processor")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"  # written by the simple auth manager


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body):
        self.status, self.body = status, body
        super().__init__(f"{method} {path}: HTTP {status}: {str(body)[:500]}")


def admin_password(home: Path, timeout: float = 60, user: str = "admin") -> str:
    """The password the simple auth manager generated for ``user`` in ``$AIRFLOW_HOME`` (it writes
    the file when the API server first starts, so wait for it)."""
    f = Path(home) / PASSWORDS_FILE
    t0 = time.time()
    while not f.exists():
        if time.time() - t0 > timeout:
            raise RuntimeError(f"{f} was not written within {timeout:.0f} s: is an Airflow API server "
                               f"running with AIRFLOW_HOME={home}?")
        time.sleep(1)
    return json.loads(f.read_text())[user]


class AirflowApi:
    def __init__(self, base: str, user: str = "admin", password: str | None = None, timeout: float = 30):
        self.base = base.rstrip("/")
        self.user, self.password = user, password
        self.timeout = timeout
        self.token: str | None = None

    @classmethod
    def from_connection(cls, conn_id: str | None = None) -> "AirflowApi":
        """From an Airflow connection ``http://<user>:<password>@<host>:<port>`` (inside a task)."""
        from airflow.sdk import BaseHook

        from ccip_ops.settings import AIRFLOW_API_CONN_ID

        c = BaseHook.get_connection(conn_id or AIRFLOW_API_CONN_ID)
        scheme = c.schema if c.schema in ("http", "https") else "http"
        host = c.host or "localhost"
        if "://" in host:
            scheme, host = host.split("://", 1)
        return cls(f"{scheme}://{host}" + (f":{c.port}" if c.port else ""), c.login, c.password, timeout=60)

    # -- transport -------------------------------------------------------------------------------
    def fetch(self, path: str, method: str = "GET", body=None, auth: bool = True,
              timeout: float | None = None) -> tuple[int, bytes, str]:
        """``(status, raw body, content type)`` of any path on the server (API or plugin page)."""
        for attempt in (0, 1):
            req = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
            req.add_header("Content-Type", "application/json")
            if auth:
                if self.token is None:
                    self.login()
                req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                    return r.status, r.read(), r.headers.get("Content-Type", "")
            except urllib.error.HTTPError as e:
                if e.code == 401 and auth and attempt == 0 and self.password:
                    self.token = None  # expired: log in again, once
                    continue
                return e.code, e.read(), e.headers.get("Content-Type", "")
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body=None, auth: bool = True, timeout: float | None = None):
        """``(status, body)``: the body parsed when it is JSON, else its text."""
        code, raw, ctype = self.fetch(path, method, body, auth, timeout)
        if raw and "json" in ctype:
            try:
                return code, json.loads(raw)
            except ValueError:
                pass
        return code, raw.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def patch(self, path, body):
        return self.request("PATCH", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

    def call(self, method: str, path: str, body=None):
        """The parsed body of a 2xx answer; :class:`ApiError` otherwise."""
        code, out = self.request(method, path, body)
        if not 200 <= code < 300:
            raise ApiError(method, path, code, out)
        return out

    def login(self) -> str:
        if self.password is None:
            raise RuntimeError(f"no password for {self.user} at {self.base}")
        code, out = self.request("POST", "/auth/token", {"username": self.user, "password": self.password},
                                 auth=False)
        if code not in (200, 201) or not isinstance(out, dict):
            raise ApiError("POST", "/auth/token", code, out)
        self.token = out["access_token"]
        return self.token

    # -- the server ------------------------------------------------------------------------------
    def healthy(self, components=CORE_COMPONENTS) -> bool:
        """Every one of ``components`` reports healthy (no login needed)."""
        try:
            code, h = self.request("GET", "/api/v2/monitor/health", auth=False, timeout=5)
        except OSError:
            return False
        return code == 200 and isinstance(h, dict) and all(
            (h.get(k) or {}).get("status") == "healthy" for k in components)

    def ensure_connection(self, conn_id: str | None = None,
                          description: str = "this Airflow's REST API, for the archive sweep"):
        """The connection through which DAG tasks (the archive sweep) call this server's REST API,
        with this client's credentials (:meth:`from_connection` reads it back)."""
        from ccip_ops.settings import AIRFLOW_API_CONN_ID

        conn_id = conn_id or AIRFLOW_API_CONN_ID
        u = urlsplit(self.base)
        body = {"connection_id": conn_id, "conn_type": "http", "host": u.hostname, "port": u.port,
                "schema": u.scheme, "login": self.user, "password": self.password, "description": description}
        if self.get(f"/api/v2/connections/{conn_id}")[0] == 200:
            return self.call("PATCH", f"/api/v2/connections/{conn_id}", body)
        return self.call("POST", "/api/v2/connections", body)

    # -- DAGs and runs -----------------------------------------------------------------------------
    def wait_dag(self, dag_id: str, timeout: float = 120, unpause: bool = True) -> dict:
        """The DAG once the DAG processor has parsed it (unpaused unless ``unpause`` is false)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            code, out = self.get(f"/api/v2/dags/{dag_id}")
            if code == 200:
                if out.get("is_paused") and unpause:
                    self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return out
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} did not appear within {timeout} s")

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None, note: str | None = None):
        """``(status, body)`` of triggering a run now (the trigger form's schema is checked: 400/422)."""
        body = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return self.post(f"/api/v2/dags/{dag_id}/dagRuns", body)

    def dag_runs(self, dag_id: str, states=(), page: int = 100) -> list[dict]:
        """Every run of ``dag_id`` in one of ``states`` (all runs when empty), page by page."""
        query = "".join(f"&state={s}" for s in states)
        out: list[dict] = []
        while True:
            p = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit={page}&offset={len(out)}{query}")
            out += p["dag_runs"]
            if not p["dag_runs"] or len(out) >= p["total_entries"]:
                return out

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 3600, poll: float = 3) -> dict:
        t0 = time.time()
        while time.time() - t0 < timeout:
            code, out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if code == 200 and out["state"] in ("success", "failed"):
                return out
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} not finished within {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        code, out = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        return out.get("task_instances", []) if code == 200 else []

    def clear_task(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, downstream: bool = True):
        """Clear one (mapped) task instance and, by default, everything downstream of it."""
        return self.post(f"/api/v2/dags/{dag_id}/clearTaskInstances",
                         {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True,
                          "task_ids": [[task_id, map_index] if map_index >= 0 else task_id],
                          "include_downstream": downstream, "include_upstream": False})

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """One try's log as text: each structured entry's event, then its other fields as JSON."""
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
