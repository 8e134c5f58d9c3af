"""Operators are told (issue 17): the DAG's failure callback mails the field, the failed groups and
stages and the weblog's URL through the SMTP provider to a local SMTP sink; the DAG has a
``dagrun_timeout`` and a priority rule that finishes started fields first, and ``export`` is the
producer of the products Asset."""
from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest

import smtp_sink as sink
from smtp_sink import smtp_sink  # noqa: F401 - the fixture

from ccip_ops import settings
from ccip_ops.model import ImagingResult, ImagingTarget
from ccip_ops.runtree import RunTree, write_json

ROOT = Path(__file__).resolve().parents[2]
FIELD = "T10t02.J005000-023000"


def _dag_module():
    spec = importlib.util.spec_from_file_location("vlass_se_cube_for_alerts", ROOT / "dags" / "vlass_se_cube.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_failure_callback_mails_the_sink(smtp_sink, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.connection_json(smtp_sink))
    monkeypatch.setenv("CCIP_ALERT_EMAIL", "ops@example.org, lead@example.org")
    monkeypatch.setenv("CCIP_UI_URL", "https://ccip.example.org/")
    monkeypatch.setenv("CCIP_WORK_ROOT", str(tmp_path))
    # a drill run whose group 4,5 failed and whose weblog was not rendered (a run that timed out)
    run_id = "manual__2026-12-04T10:00:00+00:00"
    tree = RunTree.for_run(FIELD, run_id).make()
    tree.results.mkdir(parents=True, exist_ok=True)
    t = ImagingTarget(group="4,5", spws=[4, 5], label="spw4_5", imagename="s7_0.X.spw4_5", reffreq_hz=2.5e9,
                      reffreq="2.5GHz", imsize=[320, 320], cell="5.0arcsec", phasecenter="J2000 00:50:00 -02.30.00",
                      field_ids=[0], vis="working/x_split.ms", masks=["pb"], flagpct=0.1)
    write_json(tree.failure_json(t.label), ImagingResult(target=t, status="failed",
                                                         error="FaultInjectedError: drill").to_json())
    m = _dag_module()
    ctx = {"dag": _Obj(dag_id="vlass_se_cube"), "run_id": run_id, "reason": "task_failure",
           "dag_run": _Obj(conf={"field_id": FIELD}), "ti": _Obj(task_id="image_spw_group")}
    m.notify_failure(ctx)
    assert len(smtp_sink.mails) == 1
    mail = smtp_sink.mails[0]
    assert sorted(mail["to"]) == ["lead@example.org", "ops@example.org"]
    msg = sink.parsed(mail)
    assert FIELD in msg["Subject"] and "failed" in msg["Subject"]
    body = sink.html_body(mail)
    url = settings.weblog_url("vlass_se_cube", run_id)
    assert url.startswith("https://ccip.example.org/ccip/runs/vlass_se_cube/manual__2026-12-04T10%3A00%3A00")
    assert url in body and "spw group 4,5 failed: FaultInjectedError: drill" in body
    assert "image_spw_group" in body and "task_failure" in body
    # a minimal callback context (no dag_run): the field is found from the run tree
    m.notify_failure({"dag": ctx["dag"], "run_id": run_id, "reason": "timed_out"})
    assert len(smtp_sink.mails) == 2 and FIELD.encode() in smtp_sink.mails[1]["data"]
    # nobody configured: no mail, no error
    monkeypatch.delenv("CCIP_ALERT_EMAIL")
    m.notify_failure(ctx)
    assert len(smtp_sink.mails) == 2


def test_timeout_priority_and_asset_of_the_dag():
    m = _dag_module()
    dag = m.vlass_se_cube if hasattr(m.vlass_se_cube, "task_dict") else None
    if dag is None:
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(ROOT / "dags")).dags["vlass_se_cube"]
    assert dag.dagrun_timeout == timedelta(hours=3 * settings.imaging_timeout_h())
    assert dag.on_failure_callback.__name__ == "notify_failure"
    weights = {}
    for t in dag.tasks:
        assert t.weight_rule == "upstream", t.task_id
        weights[t.task_id] = t.priority_weight + sum(dag.task_dict[i].priority_weight
                                                     for i in t.get_flat_relative_ids(upstream=True))
    order = ["stage_inputs", "editimlist_seip", "transform", "restorepims", "flagtargets", "editimlist_ccip",
             "image_spw_group", "collect", "pbcor", "rmsimages", "cutouts", "analyzestokes", "export"]
    assert [weights[s] for s in order] == sorted(weights[s] for s in order)
    assert len({weights[s] for s in order}) == len(order)  # strictly increasing with the stage
    outlets = dag.get_task("export").outlets
    assert [a.name for a in outlets] == ["vlass_se_cube_products"]


def test_settings_refuse_bad_values():
    assert settings.run_timeout_h({"CCIP_IMAGING_TIMEOUT_H": "10"}) == 30
    assert settings.run_timeout_h({"CCIP_RUN_TIMEOUT_H": "5"}) == 5
    with pytest.raises(ValueError, match="CCIP_RUN_TIMEOUT_H"):
        settings.run_timeout_h({"CCIP_RUN_TIMEOUT_H": "-1"})
    assert settings.alert_recipients({"CCIP_ALERT_EMAIL": " a@x, ,b@y "}) == ["a@x", "b@y"]
