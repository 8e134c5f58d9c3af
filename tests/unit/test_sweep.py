"""The sweep's choices over simulated days (ccip_ops.reprocess): fields that fail on bad input are
left until their inputs change, fields that fail every time never hold back the others, every field
with complete inputs is tried within ceil(fields / max_runs) sweeps, and failed runs' MS copies go."""
from __future__ import annotations

import math
import os

import pytest

from ccip_ops import PIPELINE_VERSION, reprocess
from ccip_ops.naming import run_folder
from ccip_ops.runtree import RunTree, write_json
from ccip_ops.stagelog import record
from ccip_ops.stages.stage_inputs import fingerprint


def _field(archive, fid):
    d = archive / fid
    (d / "a.ms").mkdir(parents=True)
    (d / "a.ms" / "table.dat").write_bytes(b"x")
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        (d / f).write_text("v1")
    return fid


def _fake_run(archive, work, fid, run_id, outcome, day):
    """What a finished run leaves that the sweep reads: the first task's record of the inputs, the
    stage log, run_params.json and the weblog's report, and an MS copy in working/."""
    tree = RunTree.for_run(fid, run_id, work).make()
    write_json(tree.stage_data("stage_inputs"), {"fingerprint": fingerprint(archive / fid), "started": day * 86400.0})
    (tree.working / "a.ms").mkdir()
    (tree.working / "a.ms" / "table.dat").write_bytes(b"x" * 100)
    if outcome == "bad_input":
        record(tree, "stage_inputs", "failed", 1.0, f"InputError: {archive / fid}/CCIP_parameter.list: imagename ...")
    elif outcome == "failed":
        record(tree, "stage_inputs", "ok", 1.0)
        record(tree, "transform", "failed", 1.0, "RuntimeError: mstransform crashed")
    else:
        record(tree, "stage_inputs", "ok", 1.0)
        write_json(tree.run_params_json, {"run_id": run_id, "pipeline_version": PIPELINE_VERSION})
    write_json(tree.report_json, {"state": "success" if outcome == "success" else "failed",
                                  "errors": [] if outcome == "success" else ["stage failed"]})
    return tree


@pytest.mark.parametrize("max_runs", [2, 3, 4])
def test_a_week_of_sweeps(tmp_path, max_runs):
    archive, work = tmp_path / "archive", tmp_path / "work"
    fields = [_field(archive, f"T{i:02d}t01.J000000+000000") for i in range(1, 11)]
    bad_input = set(fields[0:5:2])  # T01, T03, T05: a bad parameter list, until an operator fixes T03
    crashing = {fields[1]}  # T02: fails every time (not on its inputs)
    good = set(fields) - bad_input - crashing
    fixed_on, fixed = 3, fields[2]
    tried: dict[str, list[int]] = {f: [] for f in fields}
    done_on: dict[str, int] = {}
    for day in range(7):
        if day == fixed_on:  # the operator replaces T03's list: its next sweep tries it again
            (archive / fixed / "CCIP_parameter.list").write_text("v2")
            os.utime(archive / fixed / "CCIP_parameter.list", ns=(10**18, 10**18))
            bad_input.discard(fixed)
            good.add(fixed)
        plan = reprocess.plan_sweep(archive, work, busy=set(), max_runs=max_runs)
        assert len(plan["trigger"]) <= max_runs
        assert set(plan["trigger"]) | set(plan["skipped"]) == set(fields)
        for f in plan["trigger"]:
            tried[f].append(day)
            outcome = "bad_input" if f in bad_input else "failed" if f in crashing else "success"
            _fake_run(archive, work, f, f"reprocess__{f}__day{day}", outcome, day)
            if outcome == "success":
                done_on.setdefault(f, day)
        reprocess.clean_failed_runs(work, busy=set())
    bound = math.ceil(len(fields) / max_runs)
    for f in fields:  # every field with complete inputs tried within the bound
        assert tried[f] and tried[f][0] < bound, (f, tried[f], bound)
    for f in good - {fixed}:  # and every good one processed, once
        assert done_on[f] < bound and len(tried[f]) == 1, (f, tried[f])
    for f in bad_input:  # bad input: tried once, then left until the folder changes
        assert len(tried[f]) == 1, (f, tried[f])
        assert "failed on bad input" in plan["skipped"][f]
    # the fixed field counts as never tried again: processed within the bound of its fix
    assert tried[fixed][0] < fixed_on and len(tried[fixed]) == 2, tried[fixed]
    assert fixed_on <= done_on[fixed] < fixed_on + bound
    assert len(tried[fields[1]]) >= 2  # the crashing field is retried when nothing else needs the slots
    # failed runs keep their weblog but not their MS copy once a later run exists (the latest one is
    # kept for an operator's clear-and-retry for KEEP_FAILED_S); successful runs keep theirs
    runs = reprocess.past_runs(work, fields[1])
    for r in runs:
        run = work / fields[1] / run_folder(r.run_id)
        assert (run / "working" / "a.ms").exists() == (r is runs[-1]), r.run_id
        assert (run / "html" / "report.json").exists()
    reprocess.clean_failed_runs(work, busy=set(), now=__import__("time").time() + reprocess.KEEP_FAILED_S + 1)
    assert not (work / fields[1] / run_folder(runs[-1].run_id) / "working" / "a.ms").exists()
    assert all((r / "working" / "a.ms").exists() for f in good - {fixed} for r in (work / f).iterdir())


def test_never_tried_fields_go_before_retries(tmp_path):
    archive, work = tmp_path / "archive", tmp_path / "work"
    old = [_field(archive, f"T0{i}t01.J000000+000000") for i in range(1, 4)]
    for day, f in enumerate(old):
        _fake_run(archive, work, f, f"r{day}", "failed", day)
    new = _field(archive, "T09t09.J000000+000000")
    plan = reprocess.plan_sweep(archive, work, busy=set(), max_runs=2)
    assert plan["trigger"] == [new, old[0]]  # then the least recently tried
    assert "limit of 2" in plan["skipped"][old[1]]


def test_busy_fields_are_neither_triggered_nor_cleaned(tmp_path):
    archive, work = tmp_path / "archive", tmp_path / "work"
    f = _field(archive, "T01t01.J000000+000000")
    tree = _fake_run(archive, work, f, "r1", "failed", 0)
    assert reprocess.plan_sweep(archive, work, busy={f}, max_runs=5)["trigger"] == []
    assert reprocess.clean_failed_runs(work, busy={f}) == {}
    assert (tree.working / "a.ms").exists()
    assert reprocess.clean_failed_runs(work, busy=set()) == {}  # the latest failed run, ended just now
    assert reprocess.clean_failed_runs(work, busy=set(), keep_s=0) == {f"{f}/r1": ["a.ms"]}
    assert not (tree.working / "a.ms").exists() and tree.report_json.exists()


def test_an_unfinished_run_is_not_cleaned(tmp_path):
    archive, work = tmp_path / "archive", tmp_path / "work"
    f = _field(archive, "T01t01.J000000+000000")
    tree = RunTree.for_run(f, "r1", work).make()
    (tree.working / "a.ms").mkdir()
    record(tree, "transform", "failed", 1.0, "RuntimeError: x")  # no report yet: the run is not over
    assert reprocess.clean_failed_runs(work, busy=set(), keep_s=0) == {}
    assert (tree.working / "a.ms").exists()
