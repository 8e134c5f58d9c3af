import numpy as np
import pytest

from ccip_ops.heuristics import imaging, planes
from ccip_ops.model import Beam, ImagingResult, ImagingTarget
from ccip_ops.naming import run_folder
from ccip_ops.runtree import RunTree, check_field_id
from ccip_ops.exceptions import InputError
from ccip_ops.stages.cutouts import cutout_box


def target(**kw):
    d = dict(group="2,3", spws=[2, 3], label="spw2_3", imagename="s7_0.VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1.spw2_3",
             reffreq_hz=2.116e9, reffreq="2.116GHz", imsize=[320, 320], cell="5.0arcsec",
             phasecenter="J2000 00:50:00.000 -02.30.00.000", field_ids=[0, 1], vis="working/x_split.ms",
             masks=["working/t1.mask", "working/t2.mask", "pb"], flagpct=0.1)
    d.update(kw)
    return ImagingTarget(**d)


def test_json_round_trip():
    t = target()
    r = ImagingResult(target=t, status="ok", images={"image": "working/a"}, beam=Beam(1.0, 0.5, 10.0))
    assert ImagingTarget.from_json(t.to_json()) == t
    assert ImagingResult.from_json(r.to_json()) == r
    with pytest.raises(ValueError, match="unknown keys"):
        ImagingTarget.from_json({**t.to_json(), "extra": 1})


def test_field_id_pattern():
    assert check_field_id("T10t02.J005000-023000")
    for bad in ("T10t02.J005000-02300", "../T10t02.J005000-023000", "T10t02.J005000-023000/x", "x"):
        with pytest.raises(InputError, match="does not match"):
            check_field_id(bad)
    assert "/" not in run_folder("manual__2026-01-01T00:00:00+00:00/../x")


def test_tclean_sequence_parameters():
    t = target(tclean_overrides={"robust": 0.5, "cycleniter_final_image_nomask": 50})
    a0 = imaging.tclean_args(t, "ms", "img.iter0", 0, None)
    assert a0["niter"] == 0 and a0["nsigma"] == 2.0 and "nmajor" not in a0 and a0["stokes"] == "IQUV"
    a1 = imaging.tclean_args(t, "ms", "img.iter1", 1, "img.iter1.cleanmask")
    assert a1["usemask"] == "user" and a1["nsigma"] == 3.0 and a1["cycleniter"] == 500 and a1["robust"] == 0.5
    assert a1["restart"] and not a1["calcpsf"] and not a1["calcres"] and a1["scales"] == [0, 5, 12]
    a3 = imaging.tclean_args(t, "ms", "img.iter3", 3, "pb")
    assert a3["usemask"] == "pb" and a3["pbmask"] == 0.4 and a3["nsigma"] == 4.5 and a3["cycleniter"] == 50
    assert a3["gridder"] == "mosaic" and a3["nterms"] == 1 and a3["psfcutoff"] == 0.5 and a3["pblimit"] == 0.1


def test_spw_ranges_and_keywords():
    assert imaging.spw_ranges([2, 3, 4, 7, 9, 10]) == "2~4,7,9~10"
    kw = imaging.vlass_keywords(target(), 2.0e8)
    assert kw["VLASSTN"] == "T10t02" and kw["VLASSEP"] == "2.1" and kw["VLASSVR"] == "1"
    assert kw["VLASSBWN"] == 256e6 and kw["VLASSSPW"] == "2~3"


def test_cutout_size_rule():
    # 320 px at 5 arcsec = 0.44 deg: the whole image
    assert cutout_box(320, 320, 5.0, 160) is None
    # VLASS: 12500 px at 0.6 arcsec -> 6200 px, blc 3150, trc 9349
    assert cutout_box(12500, 12500, 0.6, 6250) == (3150, 3150, 9349, 9349)


def test_plane_rejection():
    f = np.array([2.0e9, 2.5e9, 3.0e9, 3.5e9])
    ps = [{"group": str(k), "spws": [k], "freq": fk, "bmaj": 3.0 * 3e9 / fk, "bmin": 2.0 * 3e9 / fk,
           "flagpct": 0.1} for k, fk in enumerate(f)]
    ps[1]["bmaj"] *= 1.5  # a deviant beam
    ps[3]["flagpct"] = 0.85  # too much flagged
    out = planes.keep_flags(ps)
    assert [p["keep"] for p in out] == [True, False, True, False]
    assert out[1]["why"] == ["beam deviation"] and out[3]["why"] == ["flagged fraction"]
    assert all(p["keep"] for p in planes.keep_flags(ps, {"apply": False}))


def test_run_tree_layout(tmp_path):
    t = RunTree.for_run("T10t02.J005000-023000", "manual__2026-01-01T00:00:00+00:00", tmp_path).make()
    assert t.root == tmp_path / "T10t02.J005000-023000" / "manual__2026-01-01T00_00_00_00_00"
    assert t.working.is_dir() and t.products.is_dir() and t.html.is_dir()


def test_every_model_type_round_trips_through_json_and_is_frozen():
    import dataclasses
    import json

    from ccip_ops.model import FanIn, GroupFailure, Plane, RunContext, RunParams, SeipTarget

    t = target(tclean_overrides={"uvtaper": ["2arcsec"], "robust": 0.5})
    r = ImagingResult(target=t, status="ok", images={"image": "working/a"}, beam=Beam(3.0, 2.0, 10.0),
                      qa={"stats": {"I": {"madrms": 1e-4}}}, tclean_calls=[{"task": "tclean", "wall_s": 1.0}])
    seip = SeipTarget("VLASS-SE-CONT-MOSAIC", "se", "J2000 0 0", [64, 64], "1arcsec", "2~17", 1000.0, {"nterms": 2})
    params = RunParams("T10t02.J005000-023000", spw_groups=["2,3"], imaging_overrides={"imsize": 128})
    values = [t, r, seip, params,
              RunContext("T10t02.J005000-023000", "run", "/w/run", "/a", params, seip=seip, masks=["m1", "m2"]),
              FanIn(targets=[t], results=[r], failed=[GroupFailure("4,5", "spw4_5", "boom", "cutouts")],
                    planes=[Plane("2,3", "spw2_3", [2, 3], 2.1e9, 3.0, 2.0, 0.1, why=["beam deviation"])])]
    for v in values:
        back = type(v).from_json(json.loads(json.dumps(v.to_json())))
        assert back == v, type(v).__name__
        with pytest.raises(dataclasses.FrozenInstanceError):
            v.__setattr__(dataclasses.fields(v)[0].name, None)
    with pytest.raises(TypeError):
        r.images["pb"] = "x"  # read-only mapping: a stage returns a new result
    r2 = r.adding({"pb": "working/pb"}, VLASSPK=1.0)
    assert "pb" not in r.images and r2.images["pb"] == "working/pb" and r2.qa["VLASSPK"] == 1.0
    assert values[-1].failed_groups() == ["4,5"]
    assert GroupFailure("4,5", "spw4_5", "boom", "cutouts").line() == "spw group 4,5 (spw4_5) failed: cutouts: boom"


def test_failure_causes_say_whether_a_retry_can_help():
    from ccip_ops import exceptions as ex

    assert not ex.is_retryable(ex.InputError("bad list"))
    assert not ex.is_retryable(ex.NothingLeftError("every spw group failed"))
    assert not ex.is_retryable(ex.FaultInjectedError("drill"))
    assert not ex.is_retryable(ex.ResourceLimitError("too big"))
    assert ex.is_retryable(ex.IncompleteProductError("missing"))
    assert ex.is_retryable(OSError("disk")) and ex.is_retryable(RuntimeError("CASA"))


def test_fault_injection_hits_the_first_try_of_the_named_groups_only():
    from ccip_ops import runparams
    from ccip_ops.model import RunParams

    p = RunParams("T10t02.J005000-023000", fault_groups=["2,3"])
    assert runparams.fault_injected(p, target(), 1)
    assert not runparams.fault_injected(p, target(), 2)
    assert runparams.fault_injected(RunParams("T10t02.J005000-023000", fault_groups=["spw2_3"]), target(), 1)
    assert not runparams.fault_injected(p, target(group="4,5", label="spw4_5"), 1)
