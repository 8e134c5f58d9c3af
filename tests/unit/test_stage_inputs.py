"""The first task refuses a bad archive folder with a message naming what is missing,
and never writes into the archive."""

import shutil

import pytest
from _archive_kit import FID, PIMS, make_field as _make_complete, snapshot

from ccip_ops.exceptions import InputError
from ccip_ops.runtree import RunTree
from ccip_ops.stages import stage_inputs


def make_field(root, pims=True, tgz=True, seip=True, ccip=True):
    d = _make_complete(root)
    if not pims:
        shutil.rmtree(d / f"{PIMS}.ms")
    for flag, name in ((tgz, "reimaging_resources.tgz"), (seip, "SEIP_parameter.list"), (ccip, "CCIP_parameter.list")):
        if not flag:
            (d / name).unlink()
    return d


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=f"archive folder for this field does not exist: .*{FID}"):
        stage_inputs.copy_inputs(tmp_path / "archive", FID, RunTree(tmp_path / "run"))


@pytest.mark.parametrize("missing, msg", [
    ("pims", "no PIMS"),
    ("tgz", "missing reimaging_resources.tgz"),
    ("seip", "missing SEIP_parameter.list"),
    ("ccip", "missing CCIP_parameter.list"),
])
def test_missing_input_named(tmp_path, missing, msg):
    d = make_field(tmp_path / "archive", **{missing: False})
    before = snapshot(d)
    with pytest.raises(InputError, match=msg):
        stage_inputs.copy_inputs(tmp_path / "archive", FID, RunTree(tmp_path / "run"))
    assert snapshot(d) == before


def test_every_missing_input_in_one_message(tmp_path):
    make_field(tmp_path / "archive", pims=False, tgz=False)
    with pytest.raises(InputError) as e:
        stage_inputs.copy_inputs(tmp_path / "archive", FID, RunTree(tmp_path / "run"))
    assert "no PIMS" in str(e.value) and "reimaging_resources.tgz" in str(e.value)


def test_bad_field_id_is_never_a_path(tmp_path):
    with pytest.raises(InputError, match="does not match"):
        stage_inputs.copy_inputs(tmp_path, "../etc", RunTree(tmp_path / "run"))


def test_copies_and_leaves_archive_untouched(tmp_path):
    d = make_field(tmp_path / "archive")
    before = snapshot(d)
    tree = RunTree(tmp_path / "run")
    out = stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    assert (tree.root / out["pims"] / "table.dat").exists()
    assert (tree.working / "CCIP_parameter.list").exists()
    assert not list(tree.working.glob("*.partial"))
    # a retry starts clean and gives the same copies
    out2 = stage_inputs.copy_inputs(tmp_path / "archive", FID, tree)
    assert out2 == out and snapshot(d) == before
