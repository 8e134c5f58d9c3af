"""Operating the pipeline in a real ``airflow standalone`` over its REST API (issue 6):
trigger-time refusal, bad input in the first task, partial failure then clear-and-retry of one
mapped group (one field run, see conftest.field_run), the completed run's weblog through the
plugin, and the archive sweep."""
from __future__ import annotations

import json
import shutil
import time

import pytest

import smtp_sink
from ccip_standalone import DAG, FIELD_ID, tis_of, trigger, weblog_path

pytestmark = [pytest.mark.airflow, pytest.mark.casa]
SWEEP = "vlass_se_cube_reprocess"


def test_params_violating_the_schema_are_refused_at_trigger_time(standalone):
    api = standalone.api
    bad = [{"field_id": "../T10t02.J005000-023000"},
           {"field_id": FIELD_ID, "spw_groups": ["2~4"]},
           {"field_id": FIELD_ID, "imaging_overrides": {"imsize": 10}},
           {"field_id": FIELD_ID, "imaging_overrides": {"weighting": "natural"}}]
    for conf in bad:
        code, out = api.trigger(DAG, conf, f"bad__{time.time_ns()}")
        assert code in (400, 422), (conf, code, out)
    code, out = api.get(f"/api/v2/dags/{DAG}/dagRuns?run_id_pattern=bad__")
    assert code == 200 and out["total_entries"] == 0, out


def test_field_without_pims_fails_in_the_first_task_naming_it_without_retries(standalone, tiny_field):
    fid = "T10t05.J012000-023000"
    d = standalone.archive / fid
    d.mkdir()
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        shutil.copy2(tiny_field / f, d / f)
    api = standalone.api
    run_id = trigger(api, {"field_id": fid}, "nopims")
    run = api.wait_run(DAG, run_id, timeout=600)
    tis = tis_of(api, run_id)
    assert run["state"] == "failed"
    first = tis[("stage_inputs", -1)]
    assert first["state"] == "failed" and first["try_number"] == 1 and first["max_tries"] == 0
    assert tis[("transform", -1)]["state"] == "upstream_failed"
    log = api.task_log(DAG, run_id, "stage_inputs", 1)
    assert "no PIMS" in log and str(d) in log, log[-3000:]
    # the weblog of the failed run says the same, through the plugin
    code, body, _ = api.fetch(weblog_path(run_id))
    assert code == 200 and b'id="error-banner"' in body and b"no PIMS" in body
    # and the operator is mailed by the DAG's failure callback (issue 17), run by Airflow itself
    mail = smtp_sink.wait_for(standalone.mails, run_id)
    text = smtp_sink.html_body(mail)
    assert mail["to"] == ["ops@example.org"] and fid in str(smtp_sink.parsed(mail)["Subject"])
    assert "no PIMS" in text and f"{standalone.base}/ccip/runs/{DAG}/" in text, text


def fits_of(truth, group):
    img = truth["names"]["ccip_imagename"]
    return f"{img}.spw{group.replace(',', '_')}.IQU.iter3.image.pbcor.tt0.subim.fits"


def test_partial_failure_fails_the_run_and_keeps_the_other_groups(standalone, field_run, partial, truth):
    tis = partial.tis
    mapped = {t["rendered_map_index"]: t for (tid, _), t in tis.items() if tid == "image_spw_group"}
    label = field_run.label
    assert partial.run["state"] == "failed"
    assert sorted(mapped) == sorted("spw" + g.replace(",", "_") for g in field_run.groups)
    assert mapped[label]["state"] == "failed" and mapped[label]["try_number"] == 1  # a drill: no retries
    assert all(t["state"] == "success" for lab, t in mapped.items() if lab != label), mapped
    for task in ("collect", "pbcor", "rmsimages", "cutouts", "analyzestokes", "export", "weblog"):
        assert tis[(task, -1)]["state"] == "success", (task, tis[(task, -1)]["state"])
    assert tis[("finalize", -1)]["state"] == "failed"
    assert fits_of(truth, field_run.fault) not in partial.products
    assert all(fits_of(truth, g) in partial.products for g in field_run.groups if g != field_run.fault)
    html = partial.weblog
    assert partial.weblog_code == 200 and 'id="error-banner"' in html
    assert f'<b id="failed-groups">{field_run.fault}</b>' in html
    assert f"spw group {field_run.fault} ({label}) failed: fault injected" in html
    # the failure mail of this drill run (issue 17): sent by the DAG's on_failure_callback through
    # the SMTP provider when the scheduler failed the run, naming the field, the group and the weblog
    mail = smtp_sink.wait_for(standalone.mails, field_run.run_id)
    text = smtp_sink.html_body(mail)
    assert FIELD_ID in str(smtp_sink.parsed(mail)["Subject"]) and "failed" in str(smtp_sink.parsed(mail)["Subject"])
    assert f"spw group {field_run.fault} ({label}) failed: fault injected" in text, text
    from urllib.parse import quote

    assert f"{standalone.base}/ccip/runs/{DAG}/{quote(field_run.run_id, safe='')}/html/index.html" in text, text


def test_clearing_the_failed_group_reruns_it_and_completes_the_run(standalone, field_run, partial, cleared, truth):
    # clear that one mapped task instance and its downstream: the group re-runs, then the fan-in
    assert cleared.code == 200, cleared.out
    done = {(t["task_id"], t["map_index"]) for t in cleared.out["task_instances"]}
    assert ("image_spw_group", cleared.map_index) in done and ("finalize", -1) in done
    others = {t["map_index"] for lab, t in cleared.mapped_before.items() if lab != field_run.label}
    assert not {("image_spw_group", m) for m in others} & done  # the groups that succeeded are kept
    tis = cleared.tis
    assert cleared.run["state"] == "success", {k: t["state"] for k, t in tis.items()}
    mapped = {t["rendered_map_index"]: t for (tid, _), t in tis.items() if tid == "image_spw_group"}
    assert mapped[field_run.label]["state"] == "success" and mapped[field_run.label]["try_number"] == 2
    assert all(t["try_number"] == 1 for lab, t in mapped.items() if lab != field_run.label), mapped
    prods = field_run.products
    assert all((prods / fits_of(truth, g)).is_file() for g in field_run.groups)
    params = json.loads((prods / "run_params.json").read_text())
    assert params["run_id"] == field_run.run_id and params["field_id"] == FIELD_ID and "pipeline_version" in params


def test_casa_progress_is_in_the_imaging_tasks_log_before_tclean_ends(standalone, field_run, cleared):
    """Issue 17: the log of an imaging task, read over REST, has tclean's major cycles, iterations and
    peak residuals of each step of the iteration sequence, written while tclean ran (before its
    'done' line)."""
    api, run_id = standalone.api, field_run.run_id
    tis = tis_of(api, run_id)
    ti = next(t for (tid, _), t in tis.items() if tid == "image_spw_group" and t["rendered_map_index"] != field_run.label)
    log = api.task_log(DAG, run_id, "image_spw_group", ti["try_number"], ti["map_index"])
    for it in ("iter1", "iter3"):
        assert f"CASA tclean [{it}]" in log, (it, log[-3000:])
    first_cycle = log.index("CASA tclean [iter3]: major cycle")
    assert "iterations done, peak residual" in log[first_cycle:first_cycle + 300]
    assert first_cycle < log.rindex("CASA tclean done in"), log[-3000:]


def test_the_completed_runs_weblog_is_served_in_the_ui(standalone, field_run, cleared):
    api, run_id = standalone.api, field_run.run_id
    assert cleared.run["state"] == "success"
    # the weblog through the plugin: overview, one page per stage, thumbnails, products
    code, body, ctype = api.fetch(weblog_path(run_id))
    assert code == 200 and "text/html" in ctype
    html = body.decode()
    assert FIELD_ID in html and run_id in html and "error-banner" not in html
    assert f"{len(field_run.groups)} of {len(field_run.groups)} spw groups" in html
    for n in range(1, 13):
        assert f'href="stage{n}.html"' in html
        code, page, _ = api.fetch(weblog_path(run_id, f"html/stage{n}.html"))
        assert code == 200 and b'id="qa-score"' in page, n
    code, png, ctype = api.fetch(weblog_path(run_id, f"html/thumbs/{field_run.label}_I.png"))
    assert code == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    code, body, _ = api.fetch(weblog_path(run_id, "products/run_params.json"))
    assert code == 200 and json.loads(body)["run_id"] == run_id
    # never without a login, never outside html/ and products/
    assert api.fetch(weblog_path(run_id), auth=False)[0] in (401, 403)
    assert api.fetch(weblog_path(run_id, "working/stages.json"))[0] == 404
    # the run's CASA logs, listed and served as text (issue 17)
    code, page, _ = api.fetch(weblog_path(run_id, "logs/"))
    # export logs per plane (export.<group label>.casa.log: the planes may run in separate processes)
    plane_log = f"export.{field_run.label}.casa.log"
    assert code == 200 and plane_log.encode() in page and b"casa_commands.log" in page
    code, text, ctype = api.fetch(weblog_path(run_id, f"working/logs/{plane_log}"))
    assert code == 200 and ctype.startswith("text/plain") and b"exportfits" in text
    code, text, _ = api.fetch(weblog_path(run_id, "working/casa_commands.log"))
    assert code == 200 and b"exportfits(" in text
    assert api.fetch(weblog_path(run_id, "html/../../../x"))[0] == 404
    # the plugin links the weblog from every run
    code, out = api.get("/api/v2/plugins")
    views = [v for p in out["plugins"] if p["name"] == "ccip_weblog" for v in p["external_views"]]
    assert any(v["destination"] == "dag_run" and "{RUN_ID}" in v["href"] for v in views), views


def _fake_field(archive, fid, complete=True):
    """An archive folder that passes (or not) the inputs check; the sweep never opens the files."""
    d = archive / fid
    (d / "x.ms").mkdir(parents=True)
    if complete:
        (d / "x.ms" / "table.dat").write_bytes(b"")
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        (d / f).write_text("")
    return fid


def _sweep(api, conf):
    run_id = f"sweep__{time.time_ns()}"
    code, out = api.trigger(SWEEP, conf, run_id)
    assert code in (200, 201), out
    run = api.wait_run(SWEEP, run_id, timeout=300, poll=2)
    assert run["state"] == "success", api.task_log(SWEEP, run_id, "sweep", 1)[-3000:]
    code, x = api.get(f"/api/v2/dags/{SWEEP}/dagRuns/{run_id}/taskInstances/sweep/xcomEntries/return_value")
    assert code == 200, x
    v = x["value"]
    return json.loads(v) if isinstance(v, str) else v


def test_sweep_triggers_exactly_the_fields_that_need_it_and_none_twice(standalone, cleared):
    api = standalone.api
    assert cleared.run["state"] == "success"  # the tiny field has been processed
    arch = standalone.archive
    a, b, c = (_fake_field(arch, f) for f in ("T20t01.J100000+100000", "T20t02.J100000+100000",
                                              "T20t03.J100000+100000"))
    _fake_field(arch, "T20t04.J100000+100000", complete=False)  # no readable PIMS
    # runs stay queued while vlass_se_cube is paused: the sweep must see them as busy
    api.patch(f"/api/v2/dags/{DAG}", {"is_paused": True})
    try:
        busy = trigger(api, {"field_id": b}, "manual")
        s1 = _sweep(api, {"max_runs": 1})
        assert list(s1["triggered"]) == [a], s1
        assert "queued or running" in s1["skipped"][b]
        assert "limit of 1" in s1["skipped"][c]
        assert "already processed" in s1["skipped"][FIELD_ID]
        assert "inputs incomplete" in s1["skipped"]["T20t04.J100000+100000"]
        s2 = _sweep(api, {"max_runs": 10, "force": True})
        assert sorted(s2["triggered"]) == sorted([FIELD_ID, c]), s2  # a and b have queued runs
        code, out = api.get(f"/api/v2/dags/{DAG}/dagRuns?state=queued&limit=100")
        fields = sorted(r["conf"]["field_id"] for r in out["dag_runs"])
        assert fields == sorted([a, b, c, FIELD_ID]), fields  # one run per field, none twice
        s3 = _sweep(api, {"max_runs": 10, "force": True})
        assert s3["triggered"] == {}, s3
    finally:
        code, out = api.get(f"/api/v2/dags/{DAG}/dagRuns?state=queued&limit=100")
        for r in out.get("dag_runs", []):
            api.delete(f"/api/v2/dags/{DAG}/dagRuns/{r['dag_run_id']}")
        api.patch(f"/api/v2/dags/{DAG}", {"is_paused": False})
        for f in (a, b, c, "T20t04.J100000+100000"):
            shutil.rmtree(arch / f, ignore_errors=True)
    assert busy
