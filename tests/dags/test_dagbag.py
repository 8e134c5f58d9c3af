"""DAG integrity: no import errors, and parsing imports no CASA and takes well under a second."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARSE = r"""
import json, sys, time
t0 = time.time()
import importlib.util
spec = importlib.util.spec_from_file_location("vlass_se_cube", sys.argv[1])
m = importlib.util.module_from_spec(spec)
t1 = time.time()
spec.loader.exec_module(m)
t2 = time.time()
print(json.dumps({"parse_s": t2 - t1, "casa": sorted(k for k in sys.modules if k.startswith(("casatools", "casatasks"))),
                  "ccip": sorted(k for k in sys.modules if k.startswith("ccip_ops"))}))
"""


def test_dagbag_has_no_import_errors(dag):
    assert dag.dag_id == "vlass_se_cube"
    img = dag.get_task("image_spw_group")
    assert img.pool == "casa_imaging" and img.map_index_template


def test_the_dags_tasks_are_the_pipelines_steps_in_its_order(dag):
    """One task per recipe step of ccip_ops.pipeline.STAGES (plus collect, weblog, finalize), each
    calling the step of the same name, chained in the pipeline's order."""
    from ccip_ops import pipeline

    steps = [step for _, _, step in pipeline.STAGES]
    ids = {t.task_id for t in dag.tasks}
    assert ids == set(steps) | {"collect", "weblog", "finalize"}
    for step in steps + ["collect", "weblog"]:
        assert callable(getattr(pipeline, step)), step
    order = steps[:7] + ["collect"] + steps[7:]
    for a, b in zip(order, order[1:]):
        assert a in dag.get_task(b).upstream_task_ids, (a, b)


def test_parse_imports_no_casa_and_is_fast():
    # a fresh interpreter after Airflow's SDK is imported: what the DAG file itself costs
    code = "import airflow.sdk, airflow.sdk.exceptions\n" + PARSE
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "dags" / "vlass_se_cube.py")],
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["casa"] == [], d
    assert d["parse_s"] < 1.0, d


def test_every_task_has_an_execution_timeout_and_a_timeout_is_never_retried(dag, monkeypatch):
    """Issue 16: a timeout is the task's own (another try takes as long), so ``_step`` fails the task
    without retries; every task of both DAGs has a limit, and the broker's visibility timeout
    outlasts the longest."""
    import importlib.util

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

    from ccip_ops import pipeline, settings

    bag = DagBag(str(ROOT / "dags"))
    for d in bag.dags.values():
        for t in d.tasks:
            assert t.execution_timeout is not None, (d.dag_id, t.task_id)
    assert dag.get_task("image_spw_group").execution_timeout.total_seconds() == settings.imaging_timeout_h() * 3600

    spec = importlib.util.spec_from_file_location("vlass_se_cube_mod", ROOT / "dags" / "vlass_se_cube.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def timed_out(*a, **k):
        raise AirflowTaskTimeout()

    monkeypatch.setattr(pipeline, "transform", timed_out)
    with pytest.raises(AirflowFailException, match="execution_timeout"):
        mod._step("transform", {})
