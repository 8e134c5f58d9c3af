"""hifv_restorepims on aw-projection SE-CONT products (issue 14 items 1-3).

The ``awp`` preset's SE-CONT products are made with ``VLASS-SE-CONT-AWP-P001`` (awproject,
wprojplanes=1; one spw of two channels, 256 px: the smallest field that shows the behaviour),
the way production makes them: PSF with the wbawp=False CF cache, iter0, PSF replaced, iter1 in
the Tier-1 mask with savemodel, then checkflag, statwt, selfcal, masks, the tarball. The SEIP
list names production CF caches that are not on this machine, so restorepims computes its own.
After the restore, FLAG, WEIGHT and CORRECTED_DATA must equal SE-CONT's final state, bit for bit:
the restore re-runs the same deterministic CASA calls on the same data (CF caches recomputed
from the same parameters), so any difference is a defect, not noise.
"""
import json
import time

import numpy as np
import pytest

from ccip_ops import casa_env, pipeline
from ccip_ops.simulate import DEFAULT_FIELD_ID, simulate_field

pytestmark = pytest.mark.casa


@pytest.fixture(scope="module")
def awp_restored(tmp_path_factory):
    root = tmp_path_factory.mktemp("awp")
    t0 = time.time()
    field = simulate_field(root / "archive", DEFAULT_FIELD_ID, "awp")
    t_sim = time.time() - t0
    ctx = pipeline.stage_inputs({"field_id": DEFAULT_FIELD_ID}, "awp_restore", str(root / "archive"),
                                str(root / "work"))
    for step in (pipeline.editimlist_seip, pipeline.transform):
        ctx = step(ctx)
    t0 = time.time()
    ctx = pipeline.restorepims(ctx)
    t_restore = time.time() - t0
    print(f"\n[awp] simulate {t_sim:.0f} s, restorepims {t_restore:.0f} s")
    return field, ctx, json.loads((field / "truth.json").read_text())


def test_awproject_restore_reproduces_the_se_cont_state(awp_restored):
    field, ctx, truth = awp_restored
    assert truth["se_cont"]["gridder"] == "awproject" and truth["se_cont"]["wprojplanes"] == 1
    se = np.load(field / "se_cont_state.npz")
    tb = casa_env.tools().table()
    tb.open(str(ctx.tree.abs(ctx.vis)))
    try:
        assert (tb.getcol("TIME") == se["TIME"]).all()
        assert (tb.getcol("FLAG") == se["FLAG"]).all()
        assert np.array_equal(tb.getcol("WEIGHT"), se["WEIGHT"])
        assert np.array_equal(tb.getcol("CORRECTED_DATA"), se["CORRECTED_DATA"])
        # the statwt weights did change from the Nyquist ones: the check can fail
        assert not np.allclose(tb.getcol("WEIGHT"), tb.getcol("WEIGHT").flat[0])
    finally:
        tb.close()


def test_awproject_restore_ran_the_nrao_sequence(awp_restored):
    _, ctx, _ = awp_restored
    w = ctx.tree.working
    data = json.loads(ctx.tree.stage_data("restorepims").read_text())
    assert (data["imaging_mode"], data["gridder"], data["wprojplanes"]) == ("VLASS-SE-CONT-AWP-P001", "awproject", 1)
    cf = data["cfcache"]
    # the list's production caches are not readable here: computed into working/ and recorded
    assert cf["wb_from"].startswith("computed (/home/vlass/") and cf["nowb_from"].startswith("computed (/home/vlass/")
    for key in ("wb", "nowb"):
        assert cf[key].startswith(str(w)) and any((w / cf[key]).iterdir())
    cmds = [c for c in (w / "casa_commands.log").read_text().splitlines() if c.startswith("tclean(")]
    cmds = cmds[-3:]  # restorepims: PSF-only (wbawp=False), iter0 (calcres=False), predict
    assert "wbawp=False" in cmds[0] and f"cfcache='{cf['nowb']}'" in cmds[0] and "calcres=False" in cmds[0]
    for c in cmds[1:]:
        assert "gridder='awproject'" in c and "wbawp=True" in c and f"cfcache='{cf['wb']}'" in c
        assert "wprojplanes=1" in c and "conjbeams=True" in c and "niter=0" in c and "calcres=False" in c
    assert "savemodel='modelcolumn'" in cmds[2] and "parallel=False" in cmds[2] and "startmodel" not in cmds[2]
    assert not list(w.glob("s4_0.*.I.tmp.*"))  # the wbawp=False PSF was moved in as the iter0 PSF
    tclean_calls = [c for c in data["casa_calls"] if c["task"] == "tclean"]
    print("\n[awp] restorepims tclean calls:",
          [(c["wall_s"], c["peak_rss_mb"]) for c in tclean_calls])


@pytest.fixture(scope="module")
def awp_run(awp_restored):
    """The restored awproject field through the rest of the recipe, as ``ccip run`` does it:
    flagtargets, the CCIP targets, the imaging of its group, the fan-in, export and the weblog."""
    field, ctx, truth = awp_restored
    t0 = time.time()
    ctx = pipeline.flagtargets(ctx)
    targets = pipeline.editimlist_ccip(ctx)
    results = [pipeline.image_spw_group(ctx, t) for t in targets]
    fan = pipeline.collect(ctx, targets, results)
    for step in (pipeline.pbcor, pipeline.rmsimages, pipeline.cutouts, pipeline.analyzestokes, pipeline.export):
        fan = step(ctx, fan)
    pipeline.weblog(ctx.field_id, ctx.run_id, str(ctx.tree.root.parents[1]))
    print(f"\n[awp] flagtargets to weblog {time.time() - t0:.0f} s")
    return field, ctx, truth, targets


def test_awproject_field_runs_through_the_recipe_to_valid_products(awp_run):
    """Issue 14: an aw-projection SE-CONT field is not only restored but imaged and delivered: the
    cube plane of its group, pbcor'd, exported with its beams, the manifest, the weblog without
    errors, and the injected source's polarisation fractions at their truth."""
    import xml.etree.ElementTree as ET

    from astropy.io import fits

    from ccip_ops import pipeline as pl
    from ccip_ops.simulate import sky

    field, ctx, truth, targets = awp_run
    tree = ctx.tree
    assert [t.group for t in targets] == list(truth["preset"]["spw_groups"]) == ["2"]
    assert pl.errors(ctx.field_id, ctx.run_id, str(tree.root.parents[1])) == []
    img = truth["names"]["ccip_imagename"]
    iqu = tree.products / f"{img}.spw2.IQU.iter3.image.pbcor.tt0.subim.fits"
    v = tree.products / f"{img}.spw2.V.iter3.image.pbcor.tt0.subim.fits"
    assert iqu.is_file() and v.is_file()
    with fits.open(iqu) as h:
        hdr, data = h[0].header, h[0].data
        assert hdr["NAXIS4"] == 3 and hdr["CRVAL4"] == 1 and len(h["BEAMS"].data) == 3
        assert hdr["DATE-OBS"] and hdr["DATE-END"] and hdr["DATE-OBS"] < hdr["DATE-END"]
    images = {e.get("name") for e in ET.parse(tree.products / "pipeline_manifest.xml").getroot().find("ous")
              .findall("image")}
    assert iqu.name in images and v.name in images
    html = (tree.html / "index.html").read_text()
    assert "error-banner" not in html and "1 of 1 spw groups" in html
    # the brightest injected source's polarisation, the fractions Q/I and U/I at its peak, within 3
    # sigma of the band-averaged truth (sigma = the Q or U rms / I). Stokes I itself is ~20 % below the
    # truth on this field in every Stokes plane alike: the simulated SE-CONT phase self-calibration
    # (30 deg antenna phase noise, one 2-channel spw) leaves residual phase errors that decorrelate
    # the restored data, which equal SE-CONT's bit for bit (above); the fractions are immune to it
    s1 = max(truth["sources"], key=lambda s: s["flux_3ghz_jy"])
    bi, bq, bu, _ = sky.band_average(s1, truth["chan_freqs_hz"]["2"])
    from astropy.wcs import WCS

    w = WCS(hdr).celestial
    x, y = w.world_to_pixel_values(s1["ra_deg"], s1["dec_deg"])
    j, k = int(round(float(y))), int(round(float(x)))
    cube = np.nan_to_num(data[:, 0])
    ny, nx = cube.shape[1:]
    assert 3 <= j < ny - 3 and 3 <= k < nx - 3, (j, k, cube.shape)
    box = cube[0, j - 2:j + 3, k - 2:k + 3]
    jj, kk = np.unravel_index(np.argmax(box), box.shape)
    i_, q_, u_ = cube[:, j - 2 + jj, k - 2 + kk]
    with fits.open(tree.products / iqu.name.replace(".subim.fits", ".rms.subim.fits")) as h:
        rms_i, rms_q, rms_u = (float(np.nanmedian(h[0].data[n, 0])) for n in range(3))
    print(f"[awp] source 1: I {i_:.4f} (truth {bi:.4f}), Q/I {q_ / i_:.4f} ({bq / bi:.4f}), "
          f"U/I {u_ / i_:.4f} ({bu / bi:.4f}); rms I/Q/U {rms_i:.5f}/{rms_q:.5f}/{rms_u:.5f}")
    assert i_ > 50 * rms_i  # detected
    assert abs(q_ / i_ - bq / bi) < 3 * rms_q / i_ and abs(u_ / i_ - bu / bi) < 3 * rms_u / i_


def test_a_readable_cfcache_of_the_seip_list_is_copied_in_and_restores_the_same_state(awp_restored, tmp_path):
    """Production lists name their CF caches; where they are readable the restore copies them into
    working/ (nothing is written outside the run tree) instead of computing them, and the restored
    state is the same, bit for bit."""
    import shutil

    field, ctx, _ = awp_restored
    cf = json.loads(ctx.tree.stage_data("restorepims").read_text())["cfcache"]
    caches = tmp_path / "packages" / "cfcache"  # where an observatory keeps them, outside any run
    shutil.copytree(cf["wb"], caches / "wb.cf")
    shutil.copytree(cf["nowb"], caches / "nowb.cf")
    before = sorted(p.relative_to(caches) for p in caches.rglob("*"))
    archive = tmp_path / "archive"
    shutil.copytree(field, archive / field.name)
    seip = archive / field.name / "SEIP_parameter.list"
    lines = [ln for ln in seip.read_text().splitlines() if not ln.startswith("cfcache=")]
    seip.write_text("\n".join(lines + [f"cfcache='{caches / 'wb.cf'},{caches / 'nowb.cf'}'"]) + "\n")
    c2 = pipeline.stage_inputs({"field_id": DEFAULT_FIELD_ID}, "awp_cfcache", str(archive), str(tmp_path / "work"))
    for step in (pipeline.editimlist_seip, pipeline.transform, pipeline.restorepims):
        c2 = step(c2)
    got = json.loads(c2.tree.stage_data("restorepims").read_text())["cfcache"]
    assert got["wb_from"] == str(caches / "wb.cf") and got["nowb_from"] == str(caches / "nowb.cf")
    assert got["wb"].startswith(str(c2.tree.working)) and got["nowb"].startswith(str(c2.tree.working))
    assert sorted(p.relative_to(caches) for p in caches.rglob("*")) == before  # the originals untouched
    se = np.load(field / "se_cont_state.npz")
    tb = casa_env.tools().table()
    tb.open(str(c2.tree.abs(c2.vis)))
    try:
        assert (tb.getcol("FLAG") == se["FLAG"]).all()
        assert np.array_equal(tb.getcol("WEIGHT"), se["WEIGHT"])
        assert np.array_equal(tb.getcol("CORRECTED_DATA"), se["CORRECTED_DATA"])
    finally:
        tb.close()
