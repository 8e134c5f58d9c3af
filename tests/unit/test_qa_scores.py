"""Issue 18: the QA scores are NRAO's, each from a case built to give a known value."""
import math

import pytest

from ccip_ops.heuristics import planes as planesmod, qa, thermal
from ccip_ops.model import Beam, FanIn, GroupFailure, ImagingResult, ImagingTarget, Plane
from ccip_ops.stages import scores

GROUPS = ("2,3,4,5", "6,7,8,9", "10,11,12,13", "14,15,16,17")


def _target(g, k):
    spws = [int(s) for s in g.split(",")]
    lab = "spw" + g.replace(",", "_")
    return ImagingTarget(group=g, spws=spws, label=lab, imagename=f"s7_0.IMG.{lab}", reffreq_hz=2.2e9 + 0.5e9 * k,
                         reffreq="x", imsize=[64, 64], cell="5arcsec", phasecenter="J2000 0h 0d", field_ids=[0],
                         vis="w.ms", masks=["pb"], flagpct=0.1)


def _fan(failed=(), bmaj_of=None):
    ts = [_target(g, k) for k, g in enumerate(GROUPS)]
    ok = [t for t in ts if t.group not in failed]
    res = [ImagingResult(target=t, status="ok", beam=Beam((bmaj_of or {}).get(t.group, 30.0 * 2.2e9 / t.reffreq_hz),
                                                            20.0 * 2.2e9 / t.reffreq_hz, 0.0)) for t in ok]
    verdicts = planesmod.keep_flags([{"group": r.group, "label": r.label, "spws": list(r.target.spws),
                                      "freq": r.target.reffreq_hz, "bmaj": r.beam.bmaj, "bmin": r.beam.bmin,
                                      "flagpct": r.target.flagpct} for r in res])
    return FanIn(targets=tuple(ts), results=tuple(res), planes=tuple(Plane.from_json(v) for v in verdicts),
                 failed=tuple(GroupFailure(t.group, t.label, "tclean raised") for t in ts if t.group in failed))


def test_one_of_four_groups_failed_scores_nraos_0_34():
    s = scores.makeimages(_fan(failed=("6,7,8,9",)))
    assert qa.overall(s) == pytest.approx(0.34)
    failed = [x for x in s if x["score"] == pytest.approx(0.34)]
    assert [x["applies_to"] for x in failed] == ["spw6_7_8_9"] and failed[0]["message"] == "Cleaning failure"
    assert [x for x in s if x["metric"] == "plane_rejection"][0]["message"] == "0 of 3 imaged planes are rejected."
    assert qa.overall(scores.makeimages(_fan())) == 1.0


def test_a_rejected_plane_gives_kept_over_imaged():
    fan = _fan(bmaj_of={"14,15,16,17": 60.0})  # twice the expected beam: rejected (beam deviation)
    assert [p.keep for p in fan.planes] == [True, True, True, False]
    s = scores.makeimages(fan)
    summary = [x for x in s if x["metric"] == "plane_rejection"][0]
    assert summary["score"] == pytest.approx(0.75) and summary["message"] == "1 of 4 imaged planes are rejected."
    p = scores.pbcor(fan)
    assert qa.overall(p) == pytest.approx(0.75)
    assert any(x["metric"] == "plane_rejected" and x["applies_to"] == "14,15,16,17" and "beam" in x["message"]
               for x in p)


@pytest.mark.parametrize("frac, expect", [(0.0, 1.0), (0.05, 1.0), (0.40, 0.75), (0.75, 0.5), (0.875, 0.25),
                                          (1.0, 0.0)])
def test_flagging_score_is_nraos_curve(frac, expect):
    assert qa.flagging_score(frac)["score"] == pytest.approx(expect)


def test_flagtargets_scores_the_newly_flagged_fraction():
    s = scores.flagtargets({"before": {"flagged": 100.0, "total": 1000.0}, "template": {"flagged": 500.0,
                                                                                       "total": 1000.0}})
    assert s[0]["score"] == pytest.approx(qa.flagging_score(0.4)["score"]) and "40.00%" in s[0]["message"]
    assert scores.flagtargets({})[0]["score"] == 0.0


def test_rms_against_thermal_noise():
    s = {x["applies_to"]: x["score"] for x in qa.rms_scores({"a": 1.1, "b": 3.25, "c": 10.0, "d": None})}
    assert s["a"] == 1.0 and s["b"] == pytest.approx(0.67) and s["c"] == pytest.approx(0.17) and s["d"] is None


def test_thermal_noise_is_the_radiometer_equation():
    sig = thermal.visibility_sigma(3.0e9, 2e6, 5.0)
    assert sig == pytest.approx(thermal.sefd_jy(3.0e9) / (0.93 * math.sqrt(2 * 2e6 * 5.0)))
    one = thermal.mosaic_sigma([(1000, sig, 1.0)])
    assert one == pytest.approx(sig / math.sqrt(2000))
    # four equal pointings at the half-power point: the same as one on-axis pointing
    assert thermal.mosaic_sigma([(1000, sig, math.sqrt(0.25))] * 4) == pytest.approx(one)
    fwhm = math.radians(15.0 / 60)  # 45'/3 GHz
    assert thermal.pb_gain(fwhm / 2, 3e9) == pytest.approx(0.5)


def test_observed_against_model_rows_shade_as_nraos_table():
    from ccip_ops.weblog import tables

    pw = {"I_3GHz": 0.01, "alpha": -0.7}
    ms = [{"group": "2", "freq_hz": 3e9, "keep": True, "I": 0.0112, "rms_I": 0.0005},  # +12 %, S/N 22
          {"group": "3", "freq_hz": 3e9, "keep": True, "I": 0.0099, "rms_I": 0.0015}]  # -1 %, S/N 6.6
    rows = tables.model_rows({"regions": {"peak_stokesi": {"power_law": pw, "measurements": ms}}})["peak_stokesi"]
    assert rows[0]["delta_pct"] == pytest.approx(12.0) and rows[0]["delta_class"] == "d10" and rows[0]["snr_class"] == ""
    assert rows[1]["delta_class"] == "" and rows[1]["snr_class"] == "s7_5"
    assert [tables.delta_class(x) for x in (4.9, 5, -25, 31)] == ["", "d5", "d20", "d30"]
    assert [tables.snr_class(x) for x in (2.9, 4, 9.9, 10)] == ["s3", "s5", "s10", ""]


def test_box_flag_scores_warn_for_a_skipped_group():
    s = qa.box_flag_scores({"2,3": 0.02, "4,5": 0.40}, ["16,17"], [])
    assert [x["score"] for x in s] == [1.0, 0.75, 0.5] and qa.overall(s) == 0.5
    assert "100% flagged" in s[-1]["message"]
