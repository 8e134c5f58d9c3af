"""Helpers of the standalone tests (importable by test modules, unlike conftest.py)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import airflow_local  # noqa: E402,F401
from airflow_local import free_port  # noqa: E402,F401

DAG = "vlass_se_cube"
TEST_HOME = ROOT / ".airflow-test"  # as in tests/conftest.py (wiped at session start)
FIELD_ID = "T10t02.J005000-023000"


def trigger(api, conf: dict, prefix: str) -> str:
    run_id = f"{prefix}__{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}_{time.time_ns() % 10**6}"
    code, out = api.trigger(DAG, conf, run_id)
    assert code in (200, 201), out
    return run_id


def weblog_url(base: str, run_id: str, path: str = "html/index.html", dag_id: str = DAG) -> str:
    from urllib.parse import quote

    return f"{base}/ccip/runs/{dag_id}/{quote(run_id, safe='')}/{path}"


def tis_of(api, run_id, dag_id=DAG):
    return {(t["task_id"], t["map_index"]): t for t in api.task_instances(dag_id, run_id)}


def fetch(url, token=None):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def products_of(work: Path, run_id: str) -> Path:
    from ccip_ops.naming import run_folder

    return work / FIELD_ID / run_folder(run_id) / "products"
