"""One real ``airflow standalone`` (SQLite + LocalExecutor, scheduler, dag processor, API server)
shared by the tests of this folder, driven over its REST API.

It runs on free ports (never a user's 8080), with its own AIRFLOW_HOME and work root under
``.airflow-test/`` and the session's archive (the simulated ``tiny`` field). Everything it starts
is stopped by process group at the end of the session.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ccip_standalone import DAG, FIELD_ID, TEST_HOME, airflow_local, free_port, trigger


@pytest.fixture(scope="session")
def standalone(tiny_field):
    home = TEST_HOME / "standalone"
    work = TEST_HOME / "standalone-work"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home), "CCIP_WORK_ROOT": str(work),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "CCIP_REPROCESS_CRON": "0 0 1 1 *",  # the sweep runs only when a test triggers it
        "CCIP_IMAGING_SLOTS": "2",
    })
    t0 = time.time()
    try:
        airflow_local.start(timeout=420, home=home, port=port, env=env)
        api = airflow_local.Api(f"http://localhost:{port}", home=home)
        api.ensure_pool(slots=2)
        for d in (DAG, "vlass_se_cube_reprocess"):
            api.wait_dag(d, timeout=300)
        print(f"\nairflow standalone up on port {port} in {time.time() - t0:.0f} s")
        yield SimpleNamespace(api=api, base=f"http://localhost:{port}", home=home, work=work, port=port,
                              archive=Path(env["CCIP_ARCHIVE_ROOT"]))
    finally:
        airflow_local.stop(home)


@pytest.fixture(scope="session")
def field_runs(standalone, truth):
    """The two CASA runs of the tiny field, triggered together at first use: a clean one and one
    whose first imaged spw group fails (fault injection on its first try)."""
    groups = [g for g in truth["preset"]["spw_groups"] if g != truth["flagged_group"]]
    fault = groups[0]
    ok = trigger(standalone.api, {"field_id": FIELD_ID}, "ok")
    partial = trigger(standalone.api, {"field_id": FIELD_ID, "fault_groups": [fault]}, "partial")
    return SimpleNamespace(ok=ok, partial=partial, fault=fault, groups=groups, field_id=FIELD_ID)
