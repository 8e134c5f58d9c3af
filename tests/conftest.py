"""Shared fixtures. The environment for Airflow and ccip is set here, before anything imports
Airflow: a test-only AIRFLOW_HOME and archive/work roots under ``.airflow-test/`` (wiped at the
start of each session), the project's DAG folder, no examples."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = ROOT / ".airflow-test"
FIELD_ID = "T10t02.J005000-023000"

os.environ["AIRFLOW_HOME"] = str(TEST_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["CCIP_ARCHIVE_ROOT"] = str(TEST_HOME / "archive")
os.environ["CCIP_WORK_ROOT"] = str(TEST_HOME / "work")
os.environ.setdefault("CCIP_CASA_DIR", str(ROOT / ".casa"))


def pytest_sessionstart(session):
    if TEST_HOME.exists():
        shutil.rmtree(TEST_HOME)
    (TEST_HOME / "archive").mkdir(parents=True)
    (TEST_HOME / "work").mkdir(parents=True)


@pytest.fixture(scope="session")
def archive_root() -> Path:
    return Path(os.environ["CCIP_ARCHIVE_ROOT"])


@pytest.fixture(scope="session")
def tiny_field(archive_root) -> Path:
    """The `tiny` simulated field (simulated once per session, ~1 minute)."""
    from ccip_ops.simulate import simulate_field

    return simulate_field(archive_root, FIELD_ID, "tiny")


@pytest.fixture(scope="session")
def truth(tiny_field) -> dict:
    return json.loads((tiny_field / "truth.json").read_text())


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], capture_output=True,
                         text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return home


@pytest.fixture(scope="session")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    d = bag.dags["vlass_se_cube"]
    # dag.test() runs the DAG's failure callback in-process (DagRun.execute_dag_callbacks, "only
    # needed for dag.test") with a context built from the DAG's params, not the run's conf: Airflow
    # 3.3 then raises ParamValidationError for the required field_id and fails dag.test() itself. A
    # real run's callback gets the run's conf from the dag processor. The callback is tested on its
    # own (tests/dags/test_alerts.py, a local SMTP sink); these in-process runs go without it.
    d.on_failure_callback = None
    d.has_on_failure_callback = False
    return d


@pytest.fixture(scope="session")
def serial_run(tiny_field):
    """The tiny field through every stage in one process (``ccip run``'s serial runner, no Airflow):
    (summary, run tree). The science tests read its products; the DAG has its own runs."""
    from ccip_ops.pipeline import run_serial
    from ccip_ops.runtree import RunTree

    out = run_serial({"field_id": FIELD_ID}, "serial_tiny")
    return out, RunTree.for_run(FIELD_ID, "serial_tiny")
