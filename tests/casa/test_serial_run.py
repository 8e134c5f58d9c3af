"""The tiny field end to end through the serial runner (``ccip run``: every stage in one process,
real CASA, no Airflow): the run completes, the restore is exact, the targets are NRAO's. The DAG's
own runs are in tests/dags/test_bad_input.py (dag.test) and tests/airflow (a real Airflow)."""
import json

import pytest

pytestmark = pytest.mark.casa


def test_run_succeeds_with_a_product_per_kept_group(serial_run, truth):
    from astropy.io import fits

    out, tree = serial_run
    assert out["errors"] == []
    groups = [g for g in truth["preset"]["spw_groups"] if g != truth["flagged_group"]]
    imaged = sorted(p.name[: -len(".json")] for p in tree.results.glob("*.json"))
    assert imaged == sorted("spw" + g.replace(",", "_") for g in groups)
    img = truth["names"]["ccip_imagename"]
    for g in groups:
        label = "spw" + g.replace(",", "_")
        iqu = tree.products / f"{img}.{label}.IQU.iter3.image.pbcor.tt0.subim.fits"
        v = tree.products / f"{img}.{label}.V.iter3.image.pbcor.tt0.subim.fits"
        with fits.open(iqu) as h:
            assert h[0].header["NAXIS4"] == 3 and h[0].header["CTYPE4"] == "STOKES"
            assert h[0].header["CRVAL4"] == 1  # I, Q, U
            beams = h["BEAMS"].data  # per-plane beams, one row per Stokes plane
            assert len(beams) == 3 and (beams["BMAJ"] > 0).all() and (beams["BMIN"] <= beams["BMAJ"]).all()
        with fits.open(v) as h:
            assert h[0].header["NAXIS4"] == 1 and h[0].header["CRVAL4"] == 4  # V
    assert (tree.html / "index.html").exists()


def test_fully_flagged_group_is_skipped_with_a_warning(serial_run, truth):
    _, tree = serial_run
    flagged = truth["flagged_group"]
    assert flagged
    targets = json.loads(tree.targets_json.read_text())
    assert targets["skipped_flagged"] == [flagged]
    assert flagged not in [t["group"] for t in targets["targets"]]
    html = (tree.html / "index.html").read_text()
    assert f"spw group {flagged} is 100% flagged" in html
    assert "error-banner" not in html


def test_restore_reproduces_the_se_cont_state(serial_run, truth, tiny_field):
    """restorepims: FLAG, WEIGHT and CORRECTED_DATA equal SE-CONT's final state."""
    import numpy as np

    from ccip_ops import casa_env

    _, tree = serial_run
    se = np.load(tiny_field / "se_cont_state.npz")
    tb = casa_env.tools().table()
    tb.open(str(tree.working / (truth["names"]["pims"] + "_split.ms")))
    try:
        assert (tb.getcol("TIME") == se["TIME"]).all()
        assert (tb.getcol("FLAG") == se["FLAG"]).all()
        np.testing.assert_allclose(tb.getcol("WEIGHT"), se["WEIGHT"], rtol=1e-6)
        np.testing.assert_allclose(tb.getcol("CORRECTED_DATA"), se["CORRECTED_DATA"], rtol=0, atol=1e-6)
    finally:
        tb.close()


def test_reffreq_is_the_mean_of_the_spw_mean_frequencies(serial_run, truth):
    """Computed independently from the SPECTRAL_WINDOW table of the transformed MS."""
    import numpy as np

    from ccip_ops import casa_env

    _, tree = serial_run
    tb = casa_env.tools().table()
    tb.open(str(tree.working / (truth["names"]["pims"] + "_split.ms") / "SPECTRAL_WINDOW"))
    chan = [tb.getcell("CHAN_FREQ", r) for r in range(tb.nrows())]
    tb.close()
    targets = json.loads(tree.targets_json.read_text())["targets"]
    assert any(len(t["spws"]) > 1 for t in targets)
    for t in targets:
        expect = float(np.mean([np.mean(chan[s]) for s in t["spws"]]))
        assert abs(t["reffreq_hz"] - expect) < 1.0
        assert t["reffreq"] == f"{t['reffreq_hz'] / 1e9!r}GHz"


def test_restorepims_rerun_changes_nothing(serial_run, truth, tiny_field):
    """The re-run path (§2.4 step 3): running restorepims on a restored MS gives the same state."""
    import numpy as np

    from ccip_ops import casa_env
    from ccip_ops.model import SeipTarget
    from ccip_ops.stages import restorepims

    _, tree = serial_run
    vis_rel = f"working/{truth['names']['pims']}_split.ms"
    tb = casa_env.tools().table()
    cols = ("FLAG", "WEIGHT", "SIGMA", "CORRECTED_DATA", "MODEL_DATA")
    tb.open(str(tree.abs(vis_rel)))
    before = {c: tb.getcol(c) for c in cols}
    tb.close()
    seip = SeipTarget.from_json(tree.stage_data("editimlist_seip").read_text())
    out = restorepims.restore_pims(tree, vis_rel, seip)
    assert out.rerun is True
    tb.open(str(tree.abs(vis_rel)))
    try:
        for c in cols:
            assert np.array_equal(tb.getcol(c), before[c]), c
    finally:
        tb.close()


def test_what_the_run_took_from_the_data_is_in_the_weblog(serial_run):
    """Issue 14 item 3: observation times from every row, spws no list names said in the weblog."""
    from ccip_ops.casatables import table

    _, tree = serial_run
    html = (tree.html / "index.html").read_text()
    assert "PIMS spws [0, 1] are named by neither SEIP_parameter.list nor the spw groups: ignored" in html
    obs = json.loads(tree.stage_data("export").read_text())["observation"]
    with table(next(tree.working.glob("*_split.ms"))) as tb:
        t, dt = tb.getcol("TIME"), tb.getcol("INTERVAL")
    assert obs["start_mjd"] == pytest.approx((t - dt / 2).min() / 86400, abs=1e-9)
    assert obs["end_mjd"] == pytest.approx((t + dt / 2).max() / 86400, abs=1e-9)
    assert (obs["telescope"], obs["n_observations"], obs["notes"]) == ("EVLA", 1, [])
