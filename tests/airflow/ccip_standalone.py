"""Helpers of the standalone tests (importable by test modules, unlike conftest.py)."""
from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DAG = "vlass_se_cube"
TEST_HOME = ROOT / ".airflow-test"  # as in tests/conftest.py (wiped at session start)
FIELD_ID = "T10t02.J005000-023000"


def trigger(api, conf: dict, prefix: str) -> str:
    run_id = f"{prefix}__{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}_{time.time_ns() % 10**6}"
    code, out = api.trigger(DAG, conf, run_id)
    assert code in (200, 201), out
    return run_id


def weblog_path(run_id: str, path: str = "html/index.html", dag_id: str = DAG) -> str:
    """Where the weblog plugin serves a file of a run (for ``AirflowApi.fetch``)."""
    from urllib.parse import quote

    return f"/ccip/runs/{dag_id}/{quote(run_id, safe='')}/{path}"


def tis_of(api, run_id, dag_id=DAG):
    return {(t["task_id"], t["map_index"]): t for t in api.task_instances(dag_id, run_id)}


def products_of(work: Path, run_id: str) -> Path:
    from ccip_ops.naming import run_folder

    return work / FIELD_ID / run_folder(run_id) / "products"
