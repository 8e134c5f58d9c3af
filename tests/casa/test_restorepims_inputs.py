"""hifv_restorepims and hif_editimlist on bad input: one test per case, each asserting the
message, and none changing anything in the archive folder or leaving a half extraction."""
import fnmatch
import io
import shutil
import tarfile

import pytest

from ccip_ops.exceptions import InputError
from ccip_ops.runtree import RunTree
from ccip_ops import naming
from ccip_ops.stages import editimlist, restore_resources

pytestmark = pytest.mark.casa
KEYS = ("flag_dir", "flag_version", "selfcal_table", "model_images", "tier1_mask", "tier2_mask")


def snapshot(d):
    return sorted((str(p.relative_to(d)), p.stat().st_mtime_ns, p.stat().st_size) for p in d.rglob("*"))


@pytest.fixture
def tree(tmp_path):
    return RunTree(tmp_path / "run").make()


@pytest.fixture(scope="module")
def archive_state(tiny_field):
    return snapshot(tiny_field)


@pytest.fixture(autouse=True)
def archive_untouched(tiny_field, archive_state):
    yield
    assert snapshot(tiny_field) == archive_state


def names(truth):
    return truth["names"]["pims"] + "_split.ms", truth["names"]["seip_imagename"]


def repack(src, dst, drop_pattern=None, extra=None):
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            if drop_pattern and (fnmatch.fnmatch(m.name, drop_pattern) or fnmatch.fnmatch(m.name, drop_pattern + "/*")):
                continue
            tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
        for info, data in extra or []:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def assert_clean(tree):
    assert not (tree.working / ".restorepims_extract").exists()


@pytest.mark.parametrize("key", KEYS)
def test_each_missing_resource_is_listed(tiny_field, truth, tree, key):
    vis, img = names(truth)
    pat = naming.resource_patterns(vis, img)[key]
    repack(tiny_field / "reimaging_resources.tgz", tree.working / "reimaging_resources.tgz", drop_pattern=pat)
    with pytest.raises(InputError) as e:
        restore_resources.check_and_extract(tree, vis, img)
    msg = str(e.value)
    lines = msg.splitlines()
    assert lines[0] == "-" * 120 and lines[-1] == "-" * 120
    assert "Some resources required for hifv_restorepims()/hif_makeimages() are not available" in lines[1]
    row = {ln[:20].strip(): ln[22:] for ln in lines[2:-1]}
    assert set(row) == {"reimaging_resources", *KEYS}
    assert row[key] == repr((pat, False))
    assert row["reimaging_resources"].endswith("True)")
    present = [k for k in KEYS if k != key and not (key == "flag_dir" and k == "flag_version")]
    assert all(row[k].endswith("True)") for k in present)
    assert_clean(tree)
    assert not list(tree.working.glob("*.mask")) and not list(tree.working.glob("*.tbl"))


def test_truncated_tgz(tiny_field, truth, tree):
    data = (tiny_field / "reimaging_resources.tgz").read_bytes()
    (tree.working / "reimaging_resources.tgz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        restore_resources.check_and_extract(tree, *names(truth))
    assert f"reimaging_resources : ('{tree.working / 'reimaging_resources.tgz'}', False)" in str(e.value)
    assert_clean(tree)


def _member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    data = b"evil" if kind == tarfile.REGTYPE else None
    info.size = len(data) if data else 0
    return info, data


@pytest.mark.parametrize("member, why", [
    (_member("../evil"), "'../evil' (path with '..')"),
    (_member("/tmp/ccip-evil"), "'/tmp/ccip-evil' (absolute path)"),
    (_member("innocent.link", tarfile.SYMTYPE, "/etc/passwd"), "'innocent.link' (link pointing outside (/etc/passwd))"),
    (_member("dev.null", tarfile.CHRTYPE), "'dev.null' (device or fifo file)"),
])
def test_unsafe_member_refused_by_name(tiny_field, truth, tree, member, why):
    repack(tiny_field / "reimaging_resources.tgz", tree.working / "reimaging_resources.tgz", extra=[member])
    with pytest.raises(InputError, match="refusing to extract unsafe members") as e:
        restore_resources.check_and_extract(tree, *names(truth))
    assert why in str(e.value)
    assert not (tree.root / "evil").exists() and not (tree.working.parent.parent / "evil").exists()
    assert_clean(tree)


def test_existing_flag_version_is_never_overwritten(tiny_field, truth, tree):
    vis, img = names(truth)
    shutil.copy2(tiny_field / "reimaging_resources.tgz", tree.working / "reimaging_resources.tgz")
    fv = tree.working / (vis + ".flagversions") / "flags.statwt_1"
    fv.mkdir(parents=True)
    (fv / "marker").write_text("mine")
    out = restore_resources.check_and_extract(tree, vis, img)
    assert (fv / "marker").read_text() == "mine"
    assert out["flag_version"] == [f"{vis}.flagversions/flags.statwt_1"]


CCIP = "imaging_mode='VLASS-SE-CUBE'\nimagename='VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1'\n" \
       "phasecenter='J2000 00:50:00.000 -02.30.00.000'\n"


@pytest.mark.parametrize("line, msg", [
    ("spw=['2:0~15']", "spw group '2:0~15' is not comma-separated integer spw ids"),
    ("spw=['1~4']", "spw group '1~4' is not comma-separated"),
    ("spw=['2,x']", "spw group '2,x' is not comma-separated"),
    ("spw=[]", "spw is an empty list"),
    ("spw='2,3,4'", "spw must be a list of spw groups"),
    ("spw_groups=['2']", ":4: unknown parameter 'spw_groups'"),
    ("imagename=VLASS2", ":4: value of 'imagename' is not a Python literal"),
])
def test_ccip_list_refused_before_any_work(tree, line, msg):
    (tree.working / "CCIP_parameter.list").write_text(CCIP + line + "\n")
    with pytest.raises(InputError) as e:
        editimlist.ccip_targets(tree, "working/not-opened.ms", ())
    assert msg in str(e.value) and "CCIP_parameter.list" in str(e.value)
    assert not tree.targets_json.exists()
