"""Real archives vary (issue 14 item 3): each variation on a copy of the session's tiny field
(``ccip_ops.simulate.variants``), checked at the function that takes it from the data or stops.

- observation times and observatory from every row of every observation;
- TARGET-intent field selection;
- SE model images / masks on another grid: restored at the model's size, or refused before any
  CASA work, naming both coordinate systems and the file;
- spws the lists name that the PIMS lacks (refused), spws no list names (ignored, said).
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ccip_ops import msinfo, naming, paramlist
from ccip_ops.casatables import msmetadata, table
from ccip_ops.exceptions import InputError
from ccip_ops.heuristics import coordsys, fields as fieldsel, se
from ccip_ops.runtree import RunTree, read_json
from ccip_ops.simulate import variants
from ccip_ops.stages import restorepims, stage_inputs

pytestmark = pytest.mark.casa
VLA_LON, VLA_LAT = -107.6184, 34.0790  # degrees (NRAO's published VLA site)


def pims(d: Path) -> Path:
    return next(p for p in d.glob("*.ms") if p.is_dir())


def copy_field(tiny_field: Path, dst: Path, ms: bool = True, tgz: bool = False) -> Path:
    dst.mkdir(parents=True)
    for f in ("SEIP_parameter.list", "CCIP_parameter.list", "truth.json") + (("reimaging_resources.tgz",) if tgz else ()):
        shutil.copy2(tiny_field / f, dst / f)
    if ms:
        shutil.copytree(pims(tiny_field), dst / pims(tiny_field).name)
    return dst


def variant(tiny_field: Path, tmp_path: Path, name: str, **kw) -> Path:
    d = copy_field(tiny_field, tmp_path / name, **kw)
    variants.apply(d, name)
    return d


def data_span(ms: Path) -> tuple[float, float]:
    with table(ms) as tb:
        t, dt = tb.getcol("TIME"), tb.getcol("INTERVAL")
    return float(np.min(t - dt / 2)) / 86400, float(np.max(t + dt / 2)) / 86400


# ---- observation times and observatory ------------------------------------------------------

def test_times_come_from_every_row_of_every_observation(tiny_field, tmp_path):
    ms = pims(variant(tiny_field, tmp_path, "two_observations"))
    span = msinfo.observation_span(ms)
    t0, t1 = data_span(ms)
    assert span.start_mjd == pytest.approx(t0, abs=1e-9) and span.end_mjd == pytest.approx(t1, abs=1e-9)
    assert span.n_observations == 2 and span.notes == ("2 observations (ids [0, 1]): start and end taken over "
                                                      "all of them",)  # each OBSERVATION row covers its own rows
    with msmetadata(ms) as md:  # what the first observation alone says (the old reading)
        obs0_end = md.timerangeforobs(0)["end"]["m0"]["value"]
    assert (t1 - obs0_end) * 24 > 0.5, "the variant must make observation 0 end well before the data"
    assert span.mid_mjd == pytest.approx(0.5 * (t0 + t1), abs=1e-9)
    assert span.telescope == "EVLA"
    assert (span.lon_deg, span.lat_deg) == pytest.approx((VLA_LON, VLA_LAT), abs=0.01)


def test_a_stale_observation_row_is_noted_and_the_rows_win(tiny_field, tmp_path):
    ms = pims(variant(tiny_field, tmp_path, "stale_observation_row"))
    span = msinfo.observation_span(ms)
    assert (span.start_mjd, span.end_mjd) == pytest.approx(data_span(ms), abs=1e-9)
    assert (span.end_mjd - span.start_mjd) * 24 > 1.0  # the two passes, not the stale minute
    assert any("OBSERVATION row 0 TIME_RANGE" in n and "does not cover its data" in n for n in span.notes)


def test_an_unknown_telescope_stops_with_its_name(tiny_field, tmp_path):
    ms = pims(copy_field(tiny_field, tmp_path / "scope"))
    with table(ms / "OBSERVATION", nomodify=False) as tb:
        tb.putcell("TELESCOPE_NAME", 0, "NOSUCHSCOPE")
    with pytest.raises(InputError, match=r"NOSUCHSCOPE") as e:
        msinfo.observation_span(ms)
    assert ms.name in str(e.value)


# ---- TARGET-intent field selection ----------------------------------------------------------

def test_a_calibrator_field_with_a_vlass_name_is_not_selected(tiny_field, truth, tmp_path):
    pc = paramlist.parse(tiny_field / "CCIP_parameter.list")["phasecenter"]
    half = fieldsel.CUTOUT_HALF_ARCSEC + fieldsel.DEFAULT_BUFFER_ARCSEC
    base = fieldsel.select_fields(str(pims(tiny_field)), pc, half)
    assert base.ids == tuple(f["id"] for f in truth["fields"]) and base.intents_recorded and not base.notes
    ms = pims(variant(tiny_field, tmp_path, "calibrator_field"))
    sel = fieldsel.select_fields(str(ms), pc, half)
    cal = truth["fields"][0]["name"]
    assert 0 not in sel.ids and set(sel.ids) == set(base.ids) - {0}
    assert sel.not_target == (cal,) and any(cal in n and "TARGET" in n for n in sel.notes)
    with table(ms / "STATE", nomodify=False) as tb:  # an MS without intents: by name and box, said
        tb.putcol("OBS_MODE", np.array([""] * tb.nrows()))
    sel = fieldsel.select_fields(str(ms), pc, half)
    assert sel.ids == base.ids and not sel.intents_recorded and "no scan intents" in sel.notes[0]


# ---- spws of the PIMS against the lists -----------------------------------------------------

def test_spws_no_list_names_are_ignored_and_said(tiny_field, tmp_path):
    d = copy_field(tiny_field, tmp_path / "lists", ms=False)
    notes = stage_inputs.check_spws(pims(tiny_field), d / "SEIP_parameter.list", d / "CCIP_parameter.list")
    assert notes == ["PIMS spws [0, 1] are named by neither SEIP_parameter.list nor the spw groups: ignored"]
    (d / "SEIP_parameter.list").write_text((d / "SEIP_parameter.list").read_text() + "spw='2~5'\n")
    notes = stage_inputs.check_spws(pims(tiny_field), d / "SEIP_parameter.list", d / "CCIP_parameter.list",
                                    ("2,3", "4,5"))
    assert f"PIMS spws {[0, 1] + list(range(6, 18))} are named" in notes[0]


def test_spws_the_lists_name_but_the_pims_lacks_stop_before_copying(tiny_field, tmp_path):
    d = copy_field(tiny_field, tmp_path / "archive" / tiny_field.name, tgz=True)
    variants.apply(d, "missing_spw")
    assert 17 not in msinfo.spws_with_data(pims(d))
    with pytest.raises(InputError) as e:
        stage_inputs.check_spws(pims(d), d / "SEIP_parameter.list", d / "CCIP_parameter.list")
    msg = str(e.value)
    assert "spws [17]" in msg and "'14,15,16,17'" in msg and str(pims(d)) in msg
    assert "SEIP_parameter.list spw='2~17'" in msg and "CCIP_parameter.list" in msg
    # the run's spw_groups can leave the group out, but not SE's own selection
    with pytest.raises(InputError, match=r"SEIP_parameter.list spw='2~17' names spws \[17\]"):
        stage_inputs.check_spws(pims(d), d / "SEIP_parameter.list", d / "CCIP_parameter.list", ("2,3,4,5",))
    (d / "SEIP_parameter.list").write_text((d / "SEIP_parameter.list").read_text() + "spw='2~16'\n")
    assert stage_inputs.check_spws(pims(d), d / "SEIP_parameter.list", d / "CCIP_parameter.list", ("2,3,4,5",))
    with pytest.raises(InputError, match=r"spws \[17\]"):  # the first check of the run's first stage
        stage_inputs.check_archive(tmp_path / "archive", tiny_field.name)


# ---- SE model images and masks on another grid ----------------------------------------------

def extracted(d: Path, out: Path) -> tuple[list[Path], list[Path]]:
    with tarfile.open(d / "reimaging_resources.tgz") as tar:
        tar.extractall(out, filter="data")
    models = sorted(out.glob("*.I.iter1.model.tt*"))
    masks = sorted(out.glob("*tier1.mask")) + sorted(out.glob("*tier2.mask"))
    assert len(models) == 2 and len(masks) == 2
    return models, masks


def grid(tiny_field, spws=range(2, 18)):
    p = paramlist.parse(tiny_field / "SEIP_parameter.list")
    return coordsys.restore_grid(pims(tiny_field), p["imsize"], p["cell"][0], p["phasecenter"], list(spws),
                                 se.STAGE1["reffreq"])


def test_se_images_on_the_restore_grid_pass(tiny_field, tmp_path):
    models, masks = extracted(tiny_field, tmp_path / "x")
    assert coordsys.check(models, masks, grid(tiny_field)) == ([320, 320], [])


def test_a_model_of_another_size_on_the_same_grid_is_restored_at_its_size(tiny_field, tmp_path):
    d = variant(tiny_field, tmp_path, "model_imsize", ms=False, tgz=True)
    models, masks = extracted(d, tmp_path / "x")
    n = 320 + 2 * variants.PAD_PX
    imsize, notes = coordsys.check(models, masks, grid(tiny_field))
    assert imsize == [n, n]
    assert len(notes) == 1 and f"{n}x{n} px" in notes[0] and "restored at the model's size" in notes[0]


def test_other_cell_mask_cell_or_spw_selection_is_refused_naming_both_coordinate_systems(tiny_field, tmp_path):
    d = variant(tiny_field, tmp_path, "model_cell", ms=False, tgz=True)
    models, masks = extracted(d, tmp_path / "x")
    with pytest.raises(InputError) as e:
        coordsys.check(models, masks, grid(tiny_field))
    msg = str(e.value)
    assert models[0].name in msg and "increment (cell)" in msg and "coordinate system mismatch" not in msg
    assert "increment (-5.5, 5.5) arcsec" in msg and "increment (-5, 5) arcsec" in msg and "restore:" in msg
    d = variant(tiny_field, tmp_path, "mask_cell", ms=False, tgz=True)
    models, masks = extracted(d, tmp_path / "m")
    with pytest.raises(InputError, match=r"SE mask .*tier1.mask does not match .*\(increment \(cell\)\)"):
        coordsys.check(models, masks, grid(tiny_field))
    models, masks = extracted(tiny_field, tmp_path / "y")
    with pytest.raises(InputError, match=r"spectral reference/increment") as e:  # SEIP spw='2~9'
        coordsys.check(models, masks, grid(tiny_field, range(2, 10)))
    assert "spectral reference 3.000000 GHz" in str(e.value) and "shape [320, 320, 1, 1]" in str(e.value)


def test_restorepims_refuses_a_bad_model_before_any_casa_work(tiny_field, truth, tmp_path):
    from ccip_ops.stages import editimlist

    d = variant(tiny_field, tmp_path, "model_cell", ms=False, tgz=True)
    tree = RunTree(tmp_path / "run").make()
    vis = tree.working / naming.split_vis(truth["names"]["pims"])
    shutil.copytree(pims(tiny_field), vis)
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list"):
        shutil.copy2(d / f, tree.working / f)
    seip = editimlist.seip_target(tree)
    with pytest.raises(InputError, match=r"SE model image .*\(increment \(cell\)\)"):
        restorepims.restore_pims(tree, tree.rel(vis), seip)
    log = tree.working / naming.CASA_COMMANDS
    assert not log.exists() or "tclean" not in log.read_text()
    assert not (Path(naming.flagversions(str(vis))) / "flags.hifv_restorepims_initial").exists()
    assert read_json(tree.stage_data("restorepims"), {})["resources"]["model_images"]["found"]
