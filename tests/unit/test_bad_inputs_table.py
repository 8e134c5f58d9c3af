"""Every class of bad input of issue 16, several inputs each: refused before any work by the function
the first task calls (``runparams.check`` for the trigger form and REST, ``stage_inputs.copy_inputs``
for the archive folder), with a message naming the input, the file and the rule; nothing is written
outside the run tree, and no copy of the MS is made."""
from __future__ import annotations

import os
import re
import tarfile

import pytest
from _archive_kit import CCIP, FID, PIMS, SEIP, VIS, good_members, make_field, resource_names, snapshot, write_tar

from ccip_ops import paramlist, runparams
from ccip_ops.exceptions import InputError
from ccip_ops.runtree import RunTree
from ccip_ops.stages import restore_resources, stage_inputs


def _with(text: str, key: str, value: str) -> str:
    """``text`` with the line of ``key`` replaced (or added)."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(key + "=")]
    return "\n".join(lines + [f"{key}={value}"]) + "\n"


# ---- through REST and the trigger form: the first task's run-parameter check ------------------------
REST = [
    # (conf, words the message must contain)
    ({"field_id": FID, "spw_groups": ["2", "2"]}, ["spw_groups", "non-unique"]),
    ({"field_id": FID, "spw_groups": ["2,3", "3,2"]}, ["spw_groups", "given twice"]),
    ({"field_id": FID, "spw_groups": ["02", "2"]}, ["spw_groups", "given twice"]),
    ({"field_id": FID, "spw_groups": ["2,2"]}, ["spw_groups", "names an spw twice"]),
    ({"field_id": FID + "\n"}, ["field_id", "does not match"]),
    ({"field_id": "T10t02.J005000-02300\u0663"}, ["field_id", "does not match"]),
    ({"field_id": "T1\uff10t02.J005000-023000"}, ["field_id", "does not match"]),
    ({"field_id": FID, "spw_groups": ["2\n"]}, ["spw_groups", "does not match"]),
    ({"field_id": FID, "spw_groups": ["\u0662"]}, ["spw_groups", "does not match"]),
    ({"field_id": FID, "imaging_overrides": {"imsize": 512.0}}, ["imaging_overrides", "not of type 'integer'"]),
    ({"field_id": FID, "imaging_overrides": {"imsize": True}}, ["imaging_overrides", "not of type 'integer'"]),
    ({"field_id": FID, "imaging_overrides": {"imsize": 20000}}, ["imaging_overrides", "maximum"]),
    ({"field_id": FID, "imaging_overrides": {"cell": "0arcsec"}}, ["cell", "within 0.001-3600 arcsec"]),
    ({"field_id": FID, "imaging_overrides": {"cell": "..arcsec"}}, ["imaging_overrides", "does not match"]),
    ({"field_id": FID, "imaging_overrides": {"cell": "2.0arcsec\n"}}, ["imaging_overrides", "does not match"]),
    ({"field_id": FID, "fault_groups": ["x" * 300]}, ["fault_groups", "'maxLength' rule (200)"]),
    ({"field_id": FID, "spw_groups": [["2"], ["3"]]}, ["spw_groups", "not of type 'string'"]),
    ("T10t02.J005000-023000", ["JSON object"]),
]


@pytest.mark.parametrize("conf, words", REST, ids=[str(i) for i in range(len(REST))])
def test_run_parameters_refused(conf, words):
    with pytest.raises(InputError) as e:
        runparams.check(conf)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_deeply_nested_run_parameter_refused():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InputError, match="spw_groups"):
        runparams.check({"field_id": FID, "spw_groups": deep})


def test_good_run_parameters_pass():
    p = runparams.check({"field_id": FID, "spw_groups": ["2,3", "4"], "imaging_overrides": {"imsize": 512,
                                                                                           "cell": ".5arcsec"}})
    assert p.spw_groups == ("2,3", "4")


# ---- the archive folder: refused by the first task before any copy ------------------------------
def _ccip(key, value):
    return {"ccip": _with(CCIP, key, value)}


def _seip(key, value):
    return {"seip": _with(SEIP, key, value)}


LISTS = [
    # duplicate spw groups, newline / non-ASCII digits in groups
    (_ccip("spw", "['2', '2']"), "CCIP_parameter.list", ["spw", "given twice"]),
    (_ccip("spw", "['2,3', '4', '3,2']"), "CCIP_parameter.list", ["spw", "given twice"]),
    (_ccip("spw", "['2\\n']"), "CCIP_parameter.list", ["spw group", "not comma-separated"]),
    (_ccip("spw", "['\u0662,\u0663']"), "CCIP_parameter.list", ["spw group", "not comma-separated"]),
    (_ccip("spw", "'2,3'"), "CCIP_parameter.list", ["spw must be a list"]),
    # imagename: one file name inside working/
    (_ccip("imagename", "'../../../elsewhere'"), "CCIP_parameter.list", ["imagename", "no '/'"]),
    (_ccip("imagename", "'/tmp/abs'"), "CCIP_parameter.list", ["imagename", "no '/'"]),
    (_ccip("imagename", "'..'"), "CCIP_parameter.list", ["imagename", "'..'"]),
    (_ccip("imagename", "'.hidden'"), "CCIP_parameter.list", ["imagename", "not starting with '.'"]),
    (_ccip("imagename", "'a\\nb'"), "CCIP_parameter.list", ["imagename", "ASCII letters"]),
    (_ccip("imagename", "''"), "CCIP_parameter.list", ["imagename"]),
    (_seip("imagename", "'sub/dir'"), "SEIP_parameter.list", ["imagename", "no '/'"]),
    # imsize / cell
    (_ccip("imsize", "512.0"), "CCIP_parameter.list", ["'imsize' must be list or int"]),
    (_ccip("imsize", "[512.0, 512]"), "CCIP_parameter.list", ["imsize", "not 512.0"]),
    (_ccip("imsize", "[32, 32]"), "CCIP_parameter.list", ["imsize", "within [64, 16384]"]),
    (_ccip("imsize", "[100000]"), "CCIP_parameter.list", ["imsize", "within [64, 16384]"]),
    (_ccip("imsize", "[320, 320, 320]"), "CCIP_parameter.list", ["imsize", "one or two"]),
    (_ccip("imsize", "[True, True]"), "CCIP_parameter.list", ["imsize", "integer"]),
    (_seip("imsize", "[0, 0]"), "SEIP_parameter.list", ["imsize", "within"]),
    (_ccip("cell", "['5.0parsec']"), "CCIP_parameter.list", ["cell", "<arcsec|arcmin|deg>"]),
    (_ccip("cell", "['0arcsec']"), "CCIP_parameter.list", ["cell", "within"]),
    (_ccip("cell", "['99deg']"), "CCIP_parameter.list", ["cell", "within"]),
    (_ccip("cell", "['1e3arcsec']"), "CCIP_parameter.list", ["cell", "<arcsec|arcmin|deg>"]),
    (_ccip("cell", "[5.0]"), "CCIP_parameter.list", ["cell", "must be a string"]),
    # phasecenter
    (_ccip("phasecenter", "'J2000 25:00:00 -02.30.00'"), "CCIP_parameter.list", ["phasecenter", "h < 24"]),
    (_ccip("phasecenter", "'J2000 00:50:00 -02:30:00'"), "CCIP_parameter.list", ["phasecenter", "means hours"]),
    (_ccip("phasecenter", "'J2000 00:50:00'"), "CCIP_parameter.list", ["phasecenter", "<frame> <ra> <dec>"]),
    (_ccip("phasecenter", "'FK9 00:50:00 -02.30.00'"), "CCIP_parameter.list", ["phasecenter", "frame"]),
    (_ccip("phasecenter", "'J2000 00:61:00 -02.30.00'"), "CCIP_parameter.list", ["phasecenter", "RA"]),
    (_ccip("phasecenter", "'J2000 00:50:00 -91.00.00'"), "CCIP_parameter.list", ["phasecenter", "|Dec| <= 90"]),
    (_ccip("phasecenter", "'J2000 00:50:00 -02.30.00 extra'"), "CCIP_parameter.list", ["phasecenter"]),
    (_ccip("phasecenter", "12.5"), "CCIP_parameter.list", ["'phasecenter' must be str"]),
    (_seip("phasecenter", "'J2000 400deg 0deg'"), "SEIP_parameter.list", ["phasecenter", "360 deg"]),
    # the rest of both lists, known at the start
    (_seip("spw", "[2, 3]"), "SEIP_parameter.list", ["spw", "ids and ranges"]),
    (_seip("spw", "'2~17; rm'"), "SEIP_parameter.list", ["spw", "ids and ranges"]),
    (_ccip("niter", "-5"), "CCIP_parameter.list", ["niter", "within [0, 1e+06]"]),
    (_ccip("robust", "7.5"), "CCIP_parameter.list", ["robust", "within [-2, 2]"]),
    (_ccip("imaging_mode", "'VLASS-SE-CONT'"), "CCIP_parameter.list", ["imaging_mode", "VLASS-SE-CUBE"]),
    (_ccip("vlass_plane_reject_ms", "{'nfield': 3}"), "CCIP_parameter.list", ["vlass_plane_reject_ms", "unknown key"]),
    ({"ccip": CCIP + "imagename='again'\n"}, "CCIP_parameter.list", ["'imagename' is set a second time"]),
    # deeply nested or huge literals
    (_ccip("spw", "[" * 100000 + "]" * 100000), "CCIP_parameter.list", ["'spw'", "(at most 20000)"]),
    (_ccip("spw", "[" * 5000 + "]" * 5000), "CCIP_parameter.list", ["'spw'", "nests brackets"]),
    (_ccip("spw", "[" * 9 + "]" * 9), "CCIP_parameter.list", ["'spw'", "nests brackets"]),
    (_ccip("niter", "1" * 30000), "CCIP_parameter.list", ["'niter'", "characters long"]),
    (_ccip("uvrange", "'-' * 9 ** 9 ** 9"), "CCIP_parameter.list", ["'uvrange'", "not a Python literal"]),
    ({"ccip": CCIP + "#" * (1 << 20)}, "CCIP_parameter.list", ["bytes"]),
    ({"ccip": CCIP.encode().decode() + "\udcff"}, "CCIP_parameter.list", ["not UTF-8"]),
]


def _write_list(d, name, text):
    (d / name).write_bytes(text.encode("utf-8", "surrogateescape"))


def _refused(tmp_path, words, file_word):
    """The first task on the archive folder refuses, naming ``file_word`` and ``words``; the archive is
    untouched, nothing is outside the run tree and no input was copied."""
    archive, work = tmp_path / "archive", tmp_path / "work"
    d = archive / FID
    before = snapshot(archive)
    tree = RunTree.for_run(FID, "manual__2026-01-01T00:00:00+00:00", work)
    with pytest.raises(InputError) as e:
        stage_inputs.copy_inputs(archive, FID, tree)
    msg = str(e.value)
    assert file_word in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert snapshot(archive) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "work"]
    assert [p for p in work.rglob("*") if not p.is_relative_to(tree.root)] == [work / FID]
    assert not (tree.working / f"{PIMS}.ms").exists() and not list(tree.working.glob("*.list"))
    return d, msg


@pytest.mark.parametrize("lists, file_word, words", LISTS, ids=[str(i) for i in range(len(LISTS))])
def test_parameter_lists_refused_in_the_first_task(tmp_path, lists, file_word, words):
    d = make_field(tmp_path / "archive")
    for name, key in (("SEIP_parameter.list", "seip"), ("CCIP_parameter.list", "ccip")):
        if key in lists:
            _write_list(d, name, lists[key])
    _refused(tmp_path, words, file_word)


def test_good_field_is_copied(tmp_path):
    make_field(tmp_path / "archive")
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    out = stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    assert (tree.root / out["pims"] / "ANTENNA" / "table.dat").is_file()
    assert (tree.stage_data("stage_inputs")).is_file()


# ---- the archive copy follows no link ------------------------------------------------------------
def _link_in_ms(d, tmp_path):
    os.symlink("/dev/zero", d / f"{PIMS}.ms" / "table.f0")


def _link_out_of_ms(d, tmp_path):
    (tmp_path / "secret").write_text("not the archive's")
    os.symlink(tmp_path / "secret", d / f"{PIMS}.ms" / "ANTENNA" / "table.f1")


def _dir_link_in_ms(d, tmp_path):
    os.symlink("/", d / f"{PIMS}.ms" / "SOURCE")


def _fifo_in_ms(d, tmp_path):
    os.mkfifo(d / f"{PIMS}.ms" / "table.lock")


def _list_links_out(d, tmp_path):
    (tmp_path / "outside.list").write_text(CCIP)
    (d / "CCIP_parameter.list").unlink()
    os.symlink(tmp_path / "outside.list", d / "CCIP_parameter.list")


@pytest.mark.parametrize("make_bad, words", [
    (_link_in_ms, ["table.f0", "symbolic link to /dev/zero"]),
    (_link_out_of_ms, ["table.f1", "symbolic link"]),
    (_dir_link_in_ms, ["SOURCE", "symbolic link to /"]),
    (_fifo_in_ms, ["table.lock", "device, fifo or socket"]),
    (_list_links_out, ["CCIP_parameter.list", "link out of the archive"]),
])
def test_archive_links_refused(tmp_path, make_bad, words):
    d = make_field(tmp_path / "archive")
    make_bad(d, tmp_path)
    archive = tmp_path / "archive"
    before = snapshot(archive)
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    with pytest.raises(InputError) as e:
        stage_inputs.copy_inputs(archive, FID, tree)
    for w in words:
        assert w in str(e.value), str(e.value)
    assert snapshot(archive) == before and not (tree.working / f"{PIMS}.ms").exists()


def test_link_inside_the_archive_is_followed(tmp_path):
    d = make_field(tmp_path / "archive")
    (tmp_path / "archive" / "shared.list").write_text(CCIP)
    (d / "CCIP_parameter.list").unlink()
    os.symlink(tmp_path / "archive" / "shared.list", d / "CCIP_parameter.list")
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    assert not (tree.working / "CCIP_parameter.list").is_symlink()


# ---- the tarball ---------------------------------------------------------------------------------
def _ti(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    t = tarfile.TarInfo(name)
    t.type, t.size, t.linkname = kind, size, linkname
    return t


TARS = [
    ([*good_members(), _ti("big.bin", size=4 << 20)], ["GiB", "over the cap", "CCIP_TARBALL_MAX_GIB"]),
    ([*good_members(), _ti("hl", tarfile.LNKTYPE, linkname="nowhere")], ["'hl'", "hard link to 'nowhere'"]),
    ([*good_members(), _ti("./", tarfile.REGTYPE)], ["'./'", "member without a name"]),
    ([*good_members(), good_members()[0]], ["member name given twice"]),
    ([*good_members(), ("./" + resource_names()[2], b"y")], ["member name given twice"]),
    ([*good_members(), ("/etc/passwd", b"x")], ["'/etc/passwd'", "absolute path"]),
    ([*good_members(), ("a/../../x", b"x")], ["'..'"]),
    ([*good_members(), _ti("up", tarfile.SYMTYPE, linkname="../../etc")], ["link pointing outside"]),
    ([*good_members(), _ti("dev", tarfile.CHRTYPE)], ["device or fifo"]),
]


@pytest.mark.parametrize("members, words", TARS, ids=[str(i) for i in range(len(TARS))])
def test_tarball_refused_in_the_first_task(tmp_path, monkeypatch, members, words):
    monkeypatch.setenv("CCIP_TARBALL_MAX_GIB", str(1 / 1024))  # 1 MiB: the 4 MiB member is over it
    make_field(tmp_path / "archive", members=members)
    _refused(tmp_path, words, "reimaging_resources.tgz")


def test_unreadable_tarball_refused(tmp_path):
    d = make_field(tmp_path / "archive")
    (d / "reimaging_resources.tgz").write_bytes(b"\x1f\x8b not really gzip")
    _refused(tmp_path, ["not a readable gzip tar file"], "reimaging_resources.tgz")


@pytest.mark.parametrize("prefix", ["", "./"])
def test_tar_c_dir_dot_archive_is_extracted(tmp_path, prefix):
    """``tar -C dir .`` writes a '.' entry and './' prefixes: accepted, and extracted under the names."""
    members = [_ti(".", tarfile.DIRTYPE)] if prefix else []
    members += good_members(prefix)
    members.append(_ti(prefix + "alias", tarfile.LNKTYPE, linkname=prefix + resource_names()[0]))
    make_field(tmp_path / "archive", members=members)
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    res = restore_resources.check_and_extract(tree, VIS, "VLASS2.1.se.T10t02.J005000-023000.06.1.v1")
    assert res["flag_dir"] == [f"{VIS}.flagversions"]
    assert (tree.working / f"{VIS}.flagversions" / "flags.statwt_1" / "table.dat").read_bytes() == b"x"
    assert not list(tree.working.glob(".restorepims_extract*"))


def test_missing_resources_are_restorepims_table(tmp_path):
    """Which resources the tarball lacks is reported by restorepims with spec §2.3's table."""
    make_field(tmp_path / "archive", members=good_members()[:3])
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    with pytest.raises(InputError, match="Some resources required") as e:
        restore_resources.check_and_extract(tree, VIS, "VLASS2.1.se.T10t02.J005000-023000.06.1.v1")
    assert "tier2_mask" in str(e.value) and "model_images" in str(e.value)


def test_tarball_check_at_stage_4_too(tmp_path):
    """A tarball replaced in working/ after the first task is refused by restorepims the same way."""
    make_field(tmp_path / "archive")
    tree = RunTree.for_run(FID, "r1", tmp_path / "work")
    stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    write_tar(tree.working / "reimaging_resources.tgz", [*good_members(), _ti("hl", tarfile.LNKTYPE, linkname="x")])
    with pytest.raises(InputError, match=re.escape("'hl' (hard link to 'x'")):
        restore_resources.check_and_extract(tree, VIS, "VLASS2.1.se.T10t02.J005000-023000.06.1.v1")
    assert not (tree.working / f"{VIS}.flagversions").exists()


# ---- run ids -------------------------------------------------------------------------------------
@pytest.mark.parametrize("first, second", [("a:b", "a_b"), ("a_b", "a+b"), ("x:1+2", "x+1:2"),
                                           ("manual__2026-01-01T00:00:00+00:00", "manual__2026-01-01T00_00_00_00_00")])
def test_run_ids_that_share_a_folder_are_refused(tmp_path, first, second):
    RunTree.for_run(FID, first, tmp_path).make()
    RunTree.for_run(FID, first, tmp_path).make()  # the same run again (a retry) is fine
    with pytest.raises(InputError, match=re.escape(f"run id {second!r} maps to the run folder") + ".*"
                       + re.escape(f"belongs to run {first!r}")):
        RunTree.for_run(FID, second, tmp_path)


@pytest.mark.parametrize("run_id", [".", "..", ".hidden", "", "x" * 300, None, "a\0b"])
def test_run_ids_that_name_no_folder_of_their_own(tmp_path, run_id):
    with pytest.raises(InputError, match="run id"):
        RunTree.for_run(FID, run_id, tmp_path)
    assert not list(tmp_path.iterdir())


# ---- the weblog's containment: the final file, links resolved ------------------------------------
def test_weblog_serves_only_html_and_products(tmp_path):
    tree = RunTree.for_run(FID, "r1", tmp_path / "work").make()
    (tree.html / "index.html").write_text("ok")
    (tree.products / "sub").mkdir()
    (tree.products / "sub" / "index.html").write_text("ok")
    (tree.working / "secret.txt").write_text("no")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "index.html").write_text("no")
    os.symlink(tmp_path / "outside", tree.html / "linked_dir")
    os.symlink(tmp_path / "outside" / "index.html", tree.products / "sub2")
    (tree.html / "d").mkdir()
    os.symlink(tmp_path / "outside" / "index.html", tree.html / "d" / "index.html")
    assert tree.served("html/index.html") == (tree.html / "index.html").resolve()
    assert tree.served("html") == (tree.html / "index.html").resolve()
    assert tree.served("products/sub") == (tree.products / "sub" / "index.html").resolve()
    for bad in ("html/d", "html/d/", "html/d/index.html", "html/linked_dir", "html/linked_dir/index.html",
                "products/sub2", "working/secret.txt", "html/../working/secret.txt", "../../outside/index.html",
                "", ".run_id", "html/nothing.html"):
        assert tree.served(bad) is None, bad


# ---- the same rules at stage 6 (a list in working/ changed after the first task) ---------------------
def test_stage_6_checks_the_list_with_the_same_rules(tmp_path):
    p = tmp_path / "CCIP_parameter.list"
    p.write_text(_with(CCIP, "imagename", "'../x'"))
    with pytest.raises(InputError, match=re.escape(f"{p}: imagename = '../x' is invalid")):
        paramlist.check_ccip(p)
    p.write_text(_with(CCIP, "spw", "['2', '2']"))
    assert paramlist.check_ccip(p, spw_override=("2,3",))["imagename"]
