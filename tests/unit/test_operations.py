"""The sweep's decisions (ccip_ops.reprocess) and the first task's parameter check (ccip_ops.runparams)."""
import json

import pytest

from ccip_ops import PIPELINE_VERSION, reprocess, runparams
from ccip_ops.exceptions import InputError


def _field(archive, fid, complete=True):
    d = archive / fid
    (d / "a.ms").mkdir(parents=True)
    if complete:
        (d / "a.ms" / "table.dat").write_bytes(b"")
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        (d / f).write_text("")
    return fid


def _run(work, fid, run_id, version=PIPELINE_VERSION, state="success"):
    r = work / fid / run_id
    (r / "products").mkdir(parents=True)
    (r / "html").mkdir()
    (r / "products" / "run_params.json").write_text(json.dumps({"run_id": run_id, "pipeline_version": version}))
    (r / "html" / "report.json").write_text(json.dumps({"state": state, "errors": [] if state == "success" else ["x"]}))


def test_plan_sweep(tmp_path):
    arch, work = tmp_path / "archive", tmp_path / "work"
    a, b, c, d, e = (_field(arch, f"T0{i}t01.J000000+000000") for i in range(1, 6))
    bad = _field(arch, "T09t01.J000000+000000", complete=False)
    (arch / "not-a-field").mkdir()
    _run(work, a, "r1")                                  # done by this version
    _run(work, b, "r1", version="0.0.1")                 # done by an older version only
    _run(work, c, "r1", state="failed")                  # failed run: needs another
    p = reprocess.plan_sweep(arch, work, busy={d}, max_runs=2)
    assert p["trigger"] == [e, b]  # never tried first, then the least recently tried
    assert "already processed" in p["skipped"][a] and "queued or running" in p["skipped"][d]
    assert "limit of 2" in p["skipped"][c] and "inputs incomplete" in p["skipped"][bad]
    assert "not-a-field" not in p["skipped"]
    forced = reprocess.plan_sweep(arch, work, busy={d}, max_runs=10, force=True)
    assert forced["trigger"][0] == e and sorted(forced["trigger"]) == [a, b, c, e]
    assert reprocess.plan_sweep(arch, work, busy=set(), max_runs=0)["trigger"] == []


def test_run_params_are_checked_again_with_the_form_schema():
    ok = runparams.check({"field_id": "T10t02.J005000-023000", "spw_groups": ["2,3"],
                          "imaging_overrides": {"imsize": 128, "cell": "2.0arcsec"}})
    assert ok.fault_groups == () and ok.spw_groups == ("2,3",) and ok.imaging_overrides["imsize"] == 128
    for bad, word in (({"field_id": "T10t02"}, "field_id"),
                      ({"field_id": "T10t02.J005000-023000", "spw_groups": ["2:0~3"]}, "spw_groups"),
                      ({"field_id": "T10t02.J005000-023000", "imaging_overrides": {"robust": 5}}, "imaging_overrides"),
                      ({"field_id": "T10t02.J005000-023000", "colour": 1}, "colour")):
        with pytest.raises(InputError, match=word):
            runparams.check(bad)
