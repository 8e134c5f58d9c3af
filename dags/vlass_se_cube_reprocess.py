"""vlass_se_cube_reprocess: the scheduled archive sweep.

Lists the archive's fields whose inputs are complete and that have no completed run of the
current pipeline version (all of them when ``force`` is set), and triggers one
``vlass_se_cube`` run per field, at most ``max_runs`` per sweep, never for a field that
already has a run queued or running, nor for one whose last run failed on bad input while its
archive folder is unchanged; never-tried fields go first. It then removes the MS copies of the
finished failed runs. The decisions are in ``ccip_ops.reprocess``.

Schedule: ``CCIP_REPROCESS_CRON`` (cron, UTC; default ``0 6 * * *``); default cap:
``CCIP_REPROCESS_MAX_RUNS`` (default 4).

The sweep reads the active runs and triggers new ones through Airflow's REST API
(``/api/v2``, the project's client ``scripts.airflow_api``, imported inside the task), with the
credentials of the Airflow connection ``ccip_airflow_api`` (``http://<user>:<password>@<host>:<port>``;
``python -m scripts.airflow_local start`` creates it for the embedded Airflow, the loopback cluster
for itself). A task cannot list DAG runs with their parameters any other way in Airflow 3.
"""
from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from ccip_ops.settings import AIRFLOW_API_CONN_ID

CRON = os.environ.get("CCIP_REPROCESS_CRON", "0 6 * * *")
MAX_RUNS = int(os.environ.get("CCIP_REPROCESS_MAX_RUNS", "4"))
TARGET_DAG = "vlass_se_cube"


@dag(
    dag_id="vlass_se_cube_reprocess",
    description="Sweep the archive and trigger vlass_se_cube for the fields that need (re)processing",
    schedule=CronTriggerTimetable(CRON, timezone="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vlass", "ccip"],
    default_args={"retries": 1, "execution_timeout": timedelta(minutes=30)},  # a listing and a few REST calls
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

        from ccip_ops.reprocess import clean_failed_runs, plan_sweep
        from ccip_ops.settings import archive_root, work_root
        from scripts.airflow_api import AirflowApi

        c = get_current_context()
        p = c["params"]
        api = AirflowApi.from_connection(AIRFLOW_API_CONN_ID)

        def busy_fields() -> set[str]:
            """The fields of the vlass_se_cube runs that are queued or running."""
            runs = api.dag_runs(TARGET_DAG, states=("queued", "running"))
            return {(r.get("conf") or {}).get("field_id") for r in runs} - {None}

        busy = busy_fields()
        plan = plan_sweep(archive_root(), work_root(), busy, int(p["max_runs"]), bool(p["force"]))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        plan["triggered"] = {}
        for f in plan["trigger"]:
            # re-check right before triggering: a run may have been queued since the listing
            if f in busy_fields():
                plan["skipped"][f] = "a vlass_se_cube run of this field is queued or running"
                continue
            run_id = f"reprocess__{f}__{stamp}"
            code, out = api.trigger(TARGET_DAG, {"field_id": f}, run_id, note=f"triggered by {c['run_id']}")
            if code not in (200, 201):
                raise RuntimeError(f"triggering {TARGET_DAG} for {f} ({run_id}): HTTP {code}: {str(out)[:500]}")
            plan["triggered"][f] = run_id
            print(f"triggered {TARGET_DAG} run {run_id} for field {f}")
        for f, why in sorted(plan["skipped"].items()):
            print(f"left {f}: {why}")
        plan["cleaned"] = clean_failed_runs(work_root(), busy | set(plan["triggered"]))
        for run, names in sorted(plan["cleaned"].items()):
            print(f"removed the MS copies of failed run {run}: {', '.join(names)}")
        return plan

    sweep()


vlass_se_cube_reprocess()
