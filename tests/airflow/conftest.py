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

import smtp_sink
from ccip_standalone import DAG, FIELD_ID, TEST_HOME, products_of, tis_of, trigger, weblog_path

from ccip_ops.settings import IMAGING_POOL, IMAGING_POOL_DESCRIPTION
from scripts import airflow_local
from scripts.airflow_setup import free_port


@pytest.fixture(scope="session")
def mail_sink():
    """The SMTP sink the standalone's failure callbacks mail to (issue 17: the drill runs' alerts)."""
    srv = smtp_sink.start()
    yield srv
    smtp_sink.stop(srv)


@pytest.fixture(scope="session")
def standalone(tiny_field, mail_sink):
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
        # failure mails of the drill runs, through the SMTP provider, to the sink; URLs on this port
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_sink.connection_json(mail_sink),
        "CCIP_ALERT_EMAIL": "ops@example.org", "CCIP_UI_URL": f"http://localhost:{port}",
    })
    t0 = time.time()
    try:
        airflow_local.start(timeout=420, home=home, port=port, env=env)
        api = airflow_local.api(home, port)
        code, pool = api.get(f"/api/v2/pools/{IMAGING_POOL}")  # made before the start, from CCIP_IMAGING_SLOTS
        assert code == 200 and pool["slots"] == 2 and pool["description"] == IMAGING_POOL_DESCRIPTION, pool
        for d in (DAG, "vlass_se_cube_reprocess"):
            api.wait_dag(d, timeout=300)
        print(f"\nairflow standalone up on port {port} in {time.time() - t0:.0f} s")
        yield SimpleNamespace(api=api, base=f"http://localhost:{port}", home=home, work=work, port=port,
                              archive=Path(env["CCIP_ARCHIVE_ROOT"]), mails=mail_sink)
    finally:
        airflow_local.stop(home)


@pytest.fixture(scope="session")
def field_run(standalone, truth):
    """The one CASA run of the tiny field in this folder, triggered at first use, whose first imaged
    spw group fails on its first try (fault injection). The partial failure, the clearing of that
    one mapped task, and then the successful run (products, weblog, browser, sweep) are all tested
    on it: one field run instead of two keeps the suite's time down."""
    groups = [g for g in truth["preset"]["spw_groups"] if g != truth["flagged_group"]]
    fault = groups[0]
    run_id = trigger(standalone.api, {"field_id": FIELD_ID, "fault_groups": [fault]}, "field")
    return SimpleNamespace(run_id=run_id, fault=fault, label="spw" + fault.replace(",", "_"), groups=groups,
                           field_id=FIELD_ID, products=products_of(standalone.work, run_id))


@pytest.fixture(scope="session")
def partial(standalone, field_run):
    """The run as it first ended (one group failed): its records, products and weblog, captured
    before anything clears it."""
    api = standalone.api
    run = api.wait_run(DAG, field_run.run_id, timeout=3600)
    prods = field_run.products
    code, body, _ = api.fetch(weblog_path(field_run.run_id))
    return SimpleNamespace(run=run, tis=tis_of(api, field_run.run_id),
                           products=sorted(p.name for p in prods.iterdir()) if prods.is_dir() else [],
                           weblog_code=code, weblog=body.decode(errors="replace"))


@pytest.fixture(scope="session")
def cleared(standalone, field_run, partial):
    """The failed group's mapped task instance cleared with its downstream, and the run's second end."""
    api = standalone.api
    mapped = {t["rendered_map_index"]: t for (tid, _), t in partial.tis.items() if tid == "image_spw_group"}
    victim = mapped.get(field_run.label)
    assert victim is not None, f"no mapped task {field_run.label}: {sorted(mapped)}"
    code, out = api.clear_task(DAG, field_run.run_id, "image_spw_group", victim["map_index"])
    run = api.wait_run(DAG, field_run.run_id, timeout=3600) if code == 200 else None
    return SimpleNamespace(code=code, out=out, run=run, map_index=victim["map_index"], mapped_before=mapped,
                           tis=tis_of(api, field_run.run_id))
