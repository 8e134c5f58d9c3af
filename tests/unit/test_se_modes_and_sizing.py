"""SEIP imaging modes (which gridder and heuristics each mode images with, which are restorable),
the awproject CF-cache resolution, and the per-group memory check (issue 14 items 1 and 4).
No CASA run."""
import json
from pathlib import Path

import pytest

from ccip_ops import settings
from ccip_ops.exceptions import InputError, ResourceLimitError
from ccip_ops.heuristics import memory, se
from ccip_ops.runtree import RunTree
from ccip_ops.stages import editimlist, restore_cfcache

ROOT = Path(__file__).resolve().parents[2]
PC = "J2000 00:50:00.000 -02.30.00.000"


def seip_list(tree, **kv):
    lines = ["imagename='VLASS2.1.se.T10t02.J005000-023000.06.2048.v1'", f"phasecenter={PC!r}"]
    lines += [f"{k}={v!r}" for k, v in kv.items()]
    (tree.working / "SEIP_parameter.list").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tree(tmp_path):
    return RunTree(tmp_path / "run").make()


@pytest.mark.parametrize("mode,wp", [("VLASS-SE-CONT", 32), ("VLASS-SE-CONT-AWP", 32),
                                     ("VLASS-SE-CONT-AWP-P032", 32), ("VLASS-SE-CONT-AWP-P001", 1)])
def test_awproject_modes_get_their_heuristics(tree, mode, wp):
    seip_list(tree, imaging_mode=mode, cfcache="/a.cf,/b.cf")
    t = editimlist.seip_target(tree)
    h = dict(t.heuristics)
    assert t.imsize == (16384, 16384) and t.cfcache == "/a.cf,/b.cf"
    assert h["gridder"] == "awproject" and h["wprojplanes"] == wp
    assert (h["conjbeams"], h["usepointing"], h["wbawp"], h["aterm"], h["psterm"]) == (True, True, True, True, False)
    assert (h["pblimit"], h["rotatepastep"], h["computepastep"]) == (0.02, 5.0, 360.0)
    # stage-1 (vlass_stage 1) imaging of the selfcal model
    assert (h["robust"], h["uvtaper"], h["nterms"], h["reffreq"], h["datacolumn"]) == (
        -2.0, ["2.6476arcsec"], 2, "3.0GHz", "data")
    assert json.loads((tree.stage_data("editimlist_seip")).read_text())["heuristics"]["wprojplanes"] == wp


def test_mosaic_mode_is_unchanged(tree):
    seip_list(tree, imaging_mode="VLASS-SE-CONT-MOSAIC")
    t = editimlist.seip_target(tree)
    assert dict(t.heuristics) == se.STAGE1 and t.imsize == (12500, 12500) and t.cfcache == ""
    assert se.stage1_tclean("v", "i", [1, 1], "1arcsec", PC, se.seip_mode("VLASS-SE-CONT-MOSAIC")) == \
        se.stage1_tclean("v", "i", [1, 1], "1arcsec", PC)


def test_list_overrides_wprojplanes_and_imsize(tree):
    seip_list(tree, imaging_mode="VLASS-SE-CONT", wprojplanes=8, imsize=[256, 256], conjbeams=False)
    t = editimlist.seip_target(tree)
    assert t.heuristics["wprojplanes"] == 8 and t.imsize == (256, 256) and t.heuristics["conjbeams"] is False


@pytest.mark.parametrize("mode,gridder", [("VLASS-SE-CONT-AWP2", "awp2"), ("VLASS-SE-CONT-AWPHPG-P001", "awphpg")])
def test_unrestorable_gridder_is_refused_naming_mode_and_file(tree, mode, gridder):
    seip_list(tree, imaging_mode=mode)
    with pytest.raises(InputError) as e:
        editimlist.seip_target(tree)
    msg = str(e.value)
    assert str(tree.working / "SEIP_parameter.list") in msg and repr(mode) in msg and repr(gridder) in msg
    assert not tree.stage_data("editimlist_seip").exists()


def test_refusal_follows_the_gridder_not_the_name(tree):
    # an AWP-named mode whose list sets the mosaic gridder is restorable; a mosaic mode set to awp2 is not
    seip_list(tree, imaging_mode="VLASS-SE-CONT-AWP-P001", gridder="mosaic")
    assert editimlist.seip_target(tree).heuristics["gridder"] == "mosaic"
    seip_list(tree, imaging_mode="VLASS-SE-CONT-MOSAIC", gridder="awp2")
    with pytest.raises(InputError, match="gridder 'awp2'"):
        editimlist.seip_target(tree)
    seip_list(tree, imaging_mode="VLASS-SE-CONT-XYZ")
    with pytest.raises(InputError, match="no VLASS-SE-CONT heuristics"):
        editimlist.seip_target(tree)


def test_cf_caches_copied_when_readable_else_computed(tree, tmp_path):
    img = "IMG"
    given = tmp_path / "cf_wb"
    given.mkdir()
    (given / "CFS_0_0_CF_0_0_0.im").write_text("x")
    cf = restore_cfcache.cf_caches(tree, f"{given},/nonexistent/cf_nowb", img)
    assert cf.wb_from == str(given) and (Path(cf.wb) / "CFS_0_0_CF_0_0_0.im").read_text() == "x"
    assert Path(cf.wb).parent == tree.working and Path(cf.nowb).parent == tree.working
    assert cf.nowb_from.startswith("computed") and "/nonexistent/cf_nowb" in cf.nowb_from
    assert not Path(cf.nowb).exists()  # tclean computes it
    (tmp_path / "empty").mkdir()
    cf = restore_cfcache.cf_caches(tree, str(tmp_path / "empty"), img)  # empty: not a cache
    assert cf.wb_from.startswith("computed") and cf.nowb_from == "computed"
    assert restore_cfcache.given_caches("a, b,c") == ("a", "b") and restore_cfcache.given_caches("") == (None, None)


# ---- item 4: size each group's imaging before it runs ----------------------------------------

def test_memory_model_is_the_measured_one():
    lm = json.loads((ROOT / "bench/results/imaging_scale.json").read_text())["extrapolation"]["linear_model"]
    assert memory.BASE_MIB == pytest.approx(lm["peak_rss_mb"]["m0"])
    assert memory.BYTES_PER_PIXEL_IQUV == pytest.approx(lm["bytes_per_pixel"])
    # the measured points are reproduced within 15 %
    rows = json.loads((ROOT / "bench/results/imaging_scale.json").read_text())["pixels"]["rows"]
    for r in rows:
        assert memory.tclean_bytes([r["imsize"]] * 2) / 2 ** 20 == pytest.approx(r["peak_rss_mb"], rel=0.15)
    assert memory.tclean_bytes([16384, 16384]) / 2 ** 30 == pytest.approx(118.4, abs=0.5)
    assert memory.tclean_bytes([16384, 16384], "I") < memory.tclean_bytes([16384, 16384], "IQUV") / 3


def test_worker_memory_setting():
    assert settings.worker_memory_gib({"CCIP_WORKER_MEMORY_GB": "64"}) == 64.0
    assert settings.worker_memory_gib({}) == pytest.approx(settings.machine_memory_gib())
    assert settings.machine_memory_gib() > 0.5
    for bad in ("0", "-1", "lots"):
        with pytest.raises(ValueError, match="CCIP_WORKER_MEMORY_GB"):
            settings.worker_memory_gib({"CCIP_WORKER_MEMORY_GB": bad})


def ccip_list(tree, **kv):
    lines = ["imaging_mode='VLASS-SE-CUBE'", "imagename='VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1'",
             f"phasecenter={PC!r}", "spw=['2,3', '4']"] + [f"{k}={v!r}" for k, v in kv.items()]
    (tree.working / "CCIP_parameter.list").write_text("\n".join(lines) + "\n")


def test_oversized_group_is_refused_before_any_work(tree, monkeypatch):
    monkeypatch.setenv("CCIP_WORKER_MEMORY_GB", "64")
    ccip_list(tree)
    # a 16384-px override: ~118 GiB asked of a 64 GiB worker; refused before the MS is opened
    with pytest.raises(ResourceLimitError) as e:
        editimlist.ccip_targets(tree, "working/absent_split.ms", (), overrides={"imsize": [16384, 16384]})
    msg = str(e.value)
    assert "'2,3'" in msg and "16384x16384" in msg and "118.4 GiB" in msg and "64.0 GiB" in msg
    assert "CCIP_WORKER_MEMORY_GB" in msg
    assert not tree.targets_json.exists()
    # 12500 px (~69 GiB, from the list) does not fit 64 GiB either, and fits 80 GiB
    ccip_list(tree, imsize=[12500, 12500])
    with pytest.raises(ResourceLimitError, match="69.0 GiB"):
        editimlist.ccip_targets(tree, "working/absent_split.ms", ())
    assert memory.fits([12500, 12500], 80.0) == (True, pytest.approx(69.0, abs=0.05))
    assert memory.fits([320, 320], 1.0)[0]


def test_simulate_refuses_an_unrestorable_se_mode(tmp_path, capsys):
    from ccip_ops import cli

    assert cli.main(["simulate", "--archive", str(tmp_path), "--se-mode", "VLASS-SE-CONT-AWP2"]) == 2
    assert "gridder 'awp2'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_awp_preset_images_with_awproject():
    from ccip_ops.simulate import presets

    p = presets.get("awp")
    assert se.seip_mode(p.se_mode).awproject and p.seip_spw == "2" and p.spw_groups == ("2",) and p.nspw == 3
    assert presets.get("tiny").se_mode == se.MOSAIC_MODE and presets.get("tiny").nspw == 18


def test_restore_of_a_16384_px_se_model_is_sized_first(tree, monkeypatch):
    from ccip_ops.stages import restorepims

    monkeypatch.setenv("CCIP_WORKER_MEMORY_GB", "32")
    seip_list(tree, imaging_mode="VLASS-SE-CONT")
    seip = editimlist.seip_target(tree)  # 16384 px, Stokes I, nterms 2: ~59 GiB
    with pytest.raises(ResourceLimitError) as e:
        restorepims.restore_pims(tree, "working/absent_split.ms", seip)
    assert "16384x16384" in str(e.value) and "59.3 GiB" in str(e.value) and "32.0 GiB" in str(e.value)
    assert not tree.stage_data("restorepims").exists()
