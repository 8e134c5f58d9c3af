"""vlass_se_cube_reprocess: the scheduled archive sweep.

Lists the archive's fields whose inputs are complete and that have no completed run of the
current pipeline version (all of them when ``force`` is set), and triggers one
``vlass_se_cube`` run per field, at most ``max_runs`` per sweep, never for a field that
already has a run queued or running. The decisions are in ``ccip_ops.reprocess``.

Schedule: ``CCIP_REPROCESS_CRON`` (cron, UTC; default ``0 6 * * *``); default cap:
``CCIP_REPROCESS_MAX_RUNS`` (default 4).

The sweep reads the active runs and triggers new ones through Airflow's REST API
(``/api/v2``), with the credentials of the Airflow connection ``ccip_airflow_api``
(``http://<user>:<password>@<host>:<port>``; ``scripts/airflow_local.py start`` creates it for
the embedded Airflow). A task cannot list DAG runs with their parameters any other way in
Airflow 3.
"""
from __future__ import annotations

import os

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

CRON = os.environ.get("CCIP_REPROCESS_CRON", "0 6 * * *")
MAX_RUNS = int(os.environ.get("CCIP_REPROCESS_MAX_RUNS", "4"))
TARGET_DAG = "vlass_se_cube"
CONN_ID = "ccip_airflow_api"


class _Api:
    """The few REST calls of a sweep (stdlib only)."""

    def __init__(self, conn_id: str = CONN_ID):
        from airflow.sdk import BaseHook

        c = BaseHook.get_connection(conn_id)
        scheme = c.schema if c.schema in ("http", "https") else "http"
        host = c.host or "localhost"
        if "://" in host:
            scheme, host = host.split("://", 1)
        self.base = f"{scheme}://{host}" + (f":{c.port}" if c.port else "")
        self.user, self.password = c.login, c.password
        self.token = None

    def call(self, method: str, path: str, body=None):
        import json
        import urllib.error
        import urllib.request

        if self.token is None and path != "/auth/token":
            self.token = self.call("POST", "/auth/token", {"username": self.user, "password": self.password})[
                "access_token"]
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read()[:500]!r}") from e

    def busy_fields(self, dag_id: str) -> dict[str, str]:
        """{field_id: run_id} of the runs of dag_id that are queued or running."""
        out, offset = {}, 0
        while True:
            page = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?state=queued&state=running"
                                    f"&limit=100&offset={offset}")
            for r in page["dag_runs"]:
                fid = (r.get("conf") or {}).get("field_id")
                if fid:
                    out[fid] = r["dag_run_id"]
            offset += len(page["dag_runs"])
            if not page["dag_runs"] or offset >= page["total_entries"]:
                return out


@dag(
    dag_id="vlass_se_cube_reprocess",
    description="Sweep the archive and trigger vlass_se_cube for the fields that need (re)processing",
    schedule=CronTriggerTimetable(CRON, timezone="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vlass", "ccip"],
    default_args={"retries": 1},
    params={
        "force": Param(False, type="boolean", title="reprocess all fields",
                       description="Trigger every field with complete inputs, even those already processed "
                                   "by the current pipeline version (still never one with an active run)"),
        "max_runs": Param(MAX_RUNS, type="integer", minimum=0, maximum=1000, title="runs per sweep",
                          description="At most this many vlass_se_cube runs are triggered by this sweep"),
    },
    doc_md=__doc__,
)
def vlass_se_cube_reprocess():
    @task
    def sweep() -> dict:
        import time

        from ccip_ops.reprocess import plan_sweep
        from ccip_ops.settings import archive_root, work_root

        c = get_current_context()
        p = c["params"]
        api = _Api()
        busy = api.busy_fields(TARGET_DAG)
        plan = plan_sweep(archive_root(), work_root(), set(busy), int(p["max_runs"]), bool(p["force"]))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        plan["triggered"] = {}
        for f in plan["trigger"]:
            # re-check right before triggering: a run may have been queued since the listing
            if f in api.busy_fields(TARGET_DAG):
                plan["skipped"][f] = "a vlass_se_cube run of this field is queued or running"
                continue
            run_id = f"reprocess__{f}__{stamp}"
            api.call("POST", f"/api/v2/dags/{TARGET_DAG}/dagRuns",
                     {"dag_run_id": run_id, "logical_date": None, "conf": {"field_id": f},
                      "note": f"triggered by {c['run_id']}"})
            plan["triggered"][f] = run_id
            print(f"triggered {TARGET_DAG} run {run_id} for field {f}")
        for f, why in sorted(plan["skipped"].items()):
            print(f"left {f}: {why}")
        return plan

    sweep()


vlass_se_cube_reprocess()
