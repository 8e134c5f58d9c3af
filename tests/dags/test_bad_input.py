"""Bad input fails the first task with a message naming what is missing, with no retries."""
import shutil

import pytest

pytestmark = pytest.mark.airflow


def _first_task_failure(dag, field_id, capfd):
    dr = dag.test(run_conf={"field_id": field_id})
    out = capfd.readouterr()
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    return dr, tis, out.out + out.err


def test_missing_archive_folder(dag, archive_root, capfd):
    fid = "T99t99.J000000+000000"
    dr, tis, log = _first_task_failure(dag, fid, capfd)
    assert dr.state == "failed"
    assert tis["stage_inputs"].state == "failed"
    assert tis["stage_inputs"].try_number == 1 and tis["stage_inputs"].max_tries == 0
    assert tis["transform"].state == "upstream_failed"
    assert "archive folder for this field does not exist" in log and fid in log


def test_folder_without_pims(dag, archive_root, tiny_field, capfd):
    fid = "T10t03.J010000-023000"
    d = archive_root / fid
    d.mkdir()
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list"):
        shutil.copy2(tiny_field / f, d / f)
    dr, tis, log = _first_task_failure(dag, fid, capfd)
    assert dr.state == "failed"
    assert tis["stage_inputs"].state == "failed" and tis["stage_inputs"].try_number == 1
    assert "no PIMS" in log and str(d) in log


def test_field_id_pattern_refused_by_the_trigger_form(dag):
    import copy

    good = copy.deepcopy(dag.params)
    good["field_id"] = "T10t02.J005000-023000"
    good.validate()
    for bad in ("../T10t02.J005000-023000", "T1t02.J005000-023000", ""):
        p = copy.deepcopy(dag.params)
        with pytest.raises(Exception, match="does not match"):
            p["field_id"] = bad
            p.validate()


@pytest.mark.casa
def test_missing_resource_fails_restorepims_and_the_weblog_shows_the_table(dag, archive_root, tiny_field, truth, capfd):
    import fnmatch
    import tarfile

    from ccip_ops.runtree import RunTree
    from ccip_ops.naming import resource_patterns

    fid = "T10t04.J011000-023000"
    d = archive_root / fid
    d.mkdir()
    shutil.copytree(next(tiny_field.glob("*.ms")), d / next(tiny_field.glob("*.ms")).name)
    for f in ("SEIP_parameter.list", "CCIP_parameter.list"):
        shutil.copy2(tiny_field / f, d / f)
    pat = resource_patterns(truth["names"]["pims"] + "_split.ms", truth["names"]["seip_imagename"])["tier2_mask"]
    with tarfile.open(tiny_field / "reimaging_resources.tgz") as tin, \
            tarfile.open(d / "reimaging_resources.tgz", "w:gz") as tout:
        for m in tin.getmembers():
            if not (fnmatch.fnmatch(m.name, pat) or fnmatch.fnmatch(m.name, pat + "/*")):
                tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    dr, tis, log = _first_task_failure(dag, fid, capfd)
    assert dr.state == "failed"
    assert tis["restorepims"].state == "failed" and tis["restorepims"].try_number == 1
    assert tis["weblog"].state == "success" and tis["finalize"].state == "failed"
    assert "Some resources required for hifv_restorepims()/hif_makeimages() are not available" in log
    html = (RunTree.for_run(fid, dr.run_id).html / "index.html").read_text()
    assert 'id="error-banner"' in html and "hifv_restorepims failed" in html
    assert "<td>tier2_mask</td><td>MISSING</td>" in html and "<td>tier1_mask</td><td>yes</td>" in html
