"""Provenance of the products (issue 17): the version stamp, the parameter list that was used, the
replayable script, and the weblog's warning for groups made by another version. No CASA run."""
from __future__ import annotations

import json
import subprocess

import pytest

from ccip_ops import PIPELINE_VERSION, paramlist, pipeline, provenance
from ccip_ops.model import ImagingResult
from ccip_ops.runtree import RunTree, write_json

from test_model_and_heuristics import target

FIELD = "T10t02.J005000-023000"
ARCHIVE_LIST = """# CCIP parameters of the field, as the archive has them
imaging_mode = 'VLASS-SE-CUBE'
imagename = 'VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1'
phasecenter = 'J2000 00:50:00.000 -02.30.00.000'
spw = ['2,3', '4,5', '6,7']
imsize = [12500, 12500]
cell = '0.6arcsec'
"""


def test_stamp_is_the_package_version_with_the_commit(monkeypatch):
    import importlib.metadata

    assert PIPELINE_VERSION == importlib.metadata.version("ccip")
    provenance.git_commit.cache_clear()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=provenance._HERE).stdout.strip()
    s = provenance.stamp()
    assert s.startswith(f"ccip {PIPELINE_VERSION}+g{head[:12]}"), s
    monkeypatch.setenv("CCIP_GIT_COMMIT", "0123456789abcdef0123")
    provenance.git_commit.cache_clear()
    assert provenance.stamp() == f"ccip {PIPELINE_VERSION}+g0123456789ab"
    provenance.git_commit.cache_clear()


def test_exported_list_is_the_one_used(tmp_path):
    orig = tmp_path / "CCIP_parameter.list.orig"
    orig.write_text(ARCHIVE_LIST)
    params = {"field_id": FIELD, "spw_groups": ["2,3", "4,5"],
              "imaging_overrides": {"imsize": 512, "cell": "2.0arcsec", "nsigma": 3.0}}
    over = provenance.run_overrides(params)
    used = tmp_path / "CCIP_parameter.list"
    used.write_text(provenance.used_parameter_list(ARCHIVE_LIST, over, orig.name))
    got, want = paramlist.parse(used), {**paramlist.parse(orig), **over}
    assert got == want and got["spw"] == ["2,3", "4,5"] and got["imsize"] == 512 and got["nsigma"] == 3.0
    text = used.read_text()
    assert "CCIP_parameter.list.orig: ['2,3', '4,5', '6,7']" in text and "# CCIP parameters of the field" in text
    # without run parameters the list is the archive's, unchanged
    assert provenance.used_parameter_list(ARCHIVE_LIST, {}, orig.name) == ARCHIVE_LIST


def test_pipescript_replays_the_stage_calls(tmp_path, monkeypatch):
    rp = {"field_id": FIELD, "run_id": "manual__1", "pipeline": "ccip 0.1.0+gabc",
          "params": {"field_id": FIELD, "spw_groups": ["2,3"], "imaging_overrides": {"imsize": 512},
                     "fault_groups": ["2,3"]}}
    script = tmp_path / provenance.PIPESCRIPT
    script.write_text(provenance.pipescript(rp, ["2,3"]))
    calls = []

    def rec(name):
        def f(*a, **kw):
            calls.append((name, a))
            return [f"t-{name}"] if name == "editimlist_ccip" else f"v-{name}"
        return f

    for name in ("stage_inputs", "editimlist_seip", "transform", "restorepims", "flagtargets", "editimlist_ccip",
                 "image_spw_group", "collect", "pbcor", "rmsimages", "cutouts", "analyzestokes", "export", "weblog"):
        monkeypatch.setattr(pipeline, name, rec(name))
    provenance.replay(script, "replay__1", "/arch", "/work")
    names = [c[0] for c in calls]
    assert names == ["stage_inputs", "editimlist_seip", "transform", "restorepims", "flagtargets", "editimlist_ccip",
                     "image_spw_group", "collect", "pbcor", "rmsimages", "cutouts", "analyzestokes", "export", "weblog"]
    # the run's parameters, not the operator's drill; into the new run id
    assert calls[0][1] == ({"field_id": FIELD, "spw_groups": ["2,3"], "imaging_overrides": {"imsize": 512}},
                           "replay__1", "/arch", "/work")
    assert calls[6][1] == ("v-flagtargets", "t-editimlist_ccip")


def test_weblog_flags_a_group_made_by_another_version(tmp_path):
    tree = RunTree.for_run(FIELD, "manual__mixed", tmp_path).make()
    t1, t2 = target(), target(group="4,5", spws=[4, 5], label="spw4_5")
    write_json(tree.targets_json, {"targets": [t1.to_json(), t2.to_json()], "skipped_flagged": [],
                                   "rejected_nfield": []})
    write_json(tree.run_params_json, {"field_id": FIELD, "run_id": "manual__mixed", "pipeline": "ccip 0.1.0+gaaaa"})
    tree.results.mkdir(parents=True, exist_ok=True)
    for t, stamp in ((t1, "ccip 0.1.0+gaaaa"), (t2, "ccip 0.2.0+gbbbb")):
        write_json(tree.result_json(t.label), ImagingResult(target=t, status="ok", pipeline=stamp).to_json())
    html = pipeline.weblog(FIELD, "manual__mixed", str(tmp_path))
    page = open(html).read()
    assert "spw group 4,5 was imaged by ccip 0.2.0+gbbbb, the run&#39;s other stages by ccip 0.1.0+gaaaa" in page
    assert "spw group 2,3 was imaged" not in page
    warnings = json.loads(tree.report_json.read_text())["warnings"]
    assert len([w for w in warnings if "imaged by" in w]) == 1


@pytest.mark.parametrize("stamps,n", [({"2,3": "ccip 1"}, 0), ({"2,3": "ccip 1", "4,5": ""}, 1)])
def test_mixed_versions(stamps, n):
    assert len(provenance.mixed_versions("ccip 1", stamps)) == n
    assert provenance.mixed_versions("", stamps) == []  # a run from before the stamp: nothing to compare


def test_export_writes_the_lists_used_the_script_and_the_manifest(tmp_path):
    """Stage 12's provenance files and manifest entries (no CASA: the FITS part is tests/casa's)."""
    import xml.etree.ElementTree as ET

    from ccip_ops.stages import export

    tree = RunTree.for_run(FIELD, "manual__prov", tmp_path).make()
    tree.working.mkdir(parents=True, exist_ok=True)
    (tree.working / "CCIP_parameter.list").write_text(ARCHIVE_LIST)
    (tree.working / "SEIP_parameter.list").write_text("imaging_mode = 'VLASS-SE-CONT'\n")
    stamp = provenance.stamp()
    params = {"field_id": FIELD, "spw_groups": ["4,5"], "imaging_overrides": {"robust": 0.5}, "fault_groups": []}
    write_json(tree.run_params_json, {"field_id": FIELD, "run_id": "manual__prov", "params": params,
                                      "pipeline": stamp})
    stage = tmp_path / "stage"
    stage.mkdir()
    ok = [ImagingResult(target=target(group="4,5", spws=[4, 5], label="spw4_5"), status="ok", pipeline=stamp)]
    lists = export._provenance(tree, stage, ok)
    assert lists == ["SEIP_parameter.list", "CCIP_parameter.list", "CCIP_parameter.list.orig"]
    assert (stage / "CCIP_parameter.list.orig").read_text() == ARCHIVE_LIST
    assert paramlist.parse(stage / "CCIP_parameter.list") == {**paramlist.parse(stage / "CCIP_parameter.list.orig"),
                                                               "spw": ["4,5"], "robust": 0.5}
    assert (stage / "SEIP_parameter.list").read_text() == "imaging_mode = 'VLASS-SE-CONT'\n"
    script = (stage / provenance.PIPESCRIPT).read_text()
    assert "'spw_groups': ['4,5']" in script and "this run: 4,5" in script and stamp in script
    compile(script, provenance.PIPESCRIPT, "exec")
    export.write_manifest(stage, ["a.fits"], lists, stamp, run_params=True)
    ous = ET.parse(stage / "pipeline_manifest.xml").getroot().find("ous")
    assert ous.find("pipeline_version").get("name") == stamp
    assert ous.find("pipescript").get("name") == provenance.PIPESCRIPT
    assert ous.find("run_params").get("name") == "run_params.json"
    assert [(e.get("name"), e.get("origin")) for e in ous.findall("parameter_list")] == [
        ("SEIP_parameter.list", None), ("CCIP_parameter.list", None), ("CCIP_parameter.list.orig", "archive")]
    # a run without run parameters exports the archive's list unchanged, and no .orig
    write_json(tree.run_params_json, {"field_id": FIELD, "run_id": "manual__prov", "params": {"field_id": FIELD}})
    again = tmp_path / "again"
    again.mkdir()
    assert export._provenance(tree, again, ok) == ["SEIP_parameter.list", "CCIP_parameter.list"]
    assert (again / "CCIP_parameter.list").read_text() == ARCHIVE_LIST
