"""hif_makeimages, pbcor, rms images and cutouts on the tiny field (spec §4-§7).

Tolerances come from the physics: 5 % on Stokes I is ~20x the image noise at the bright
source and covers the mosaic/clean approximations; Q/I and U/I within 3 sigma of the local
image noise (from the rms image) relative to I; noise figures within the 25 % / 15 % the
issue sets.
"""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ccip_ops import casa_env, naming
from ccip_ops.model import ImagingTarget
from ccip_ops.runtree import RunTree
from ccip_ops.simulate import sky

pytestmark = pytest.mark.casa

KEPT_ITER3 = {".image.tt0", ".residual.tt0", ".psf.tt0", ".pb.tt0", ".model.tt0", ".sumwt.tt0", ".weight.tt0", ".mask"}
KEPT = {f".iter0{s}" for s in (".image.tt0", ".residual.tt0")} | \
       {f".iter{n}{s}" for n in (1, 2) for s in (".image.tt0", ".residual.tt0", ".cleanmask")} | \
       {f".iter3{s}" for s in KEPT_ITER3}


def read(path, mask=False):
    ia = casa_env.tools().image()
    ia.open(str(path))
    a = ia.getchunk(getmask=mask)
    cs = ia.coordsys()
    shape = ia.shape()
    ia.close()
    return a, cs, shape


def at_source(a, cs, src, plane):
    from scipy.ndimage import map_coordinates

    w = cs.referencevalue()["numeric"].copy()
    w[0], w[1] = np.radians(src["ra_deg"]), np.radians(src["dec_deg"])
    px = cs.topixel(w)["numeric"]
    img = a[:, :, plane, 0]
    img = np.where(np.isfinite(img), img, 0.0)  # pbcor is inf beyond the pb limit: must not spread
    return float(map_coordinates(img, [[px[0]], [px[1]]], order=3)[0]), px


def results(tree):
    return [json.loads(p.read_text()) for p in sorted(tree.results.glob("*.json")) if not p.name.endswith(".failed.json")]


def test_flux_and_polarisation_of_the_bright_source(serial_run, truth):
    _, tree = serial_run
    s1 = truth["sources"][0]
    rs = results(tree)
    assert len(rs) == 3
    for r in rs:
        t = r["target"]
        base = tree.abs(r["images"]["image"]).as_posix()[: -len(".image.tt0")]
        a, cs, _ = read(base + ".image.pbcor.tt0")
        rms, rcs, _ = read(base + ".image.pbcor.tt0.rms")
        i, px = at_source(a, cs, s1, 0)
        q, _ = at_source(a, cs, s1, 1)
        u, _ = at_source(a, cs, s1, 2)
        ti = sky.stokes_at(s1, t["reffreq_hz"])[0]
        assert i == pytest.approx(float(ti), rel=0.05), t["group"]
        # Q and U: an mfs plane measures the band average (the angle turns across the band). They are
        # compared as Q/I and U/I: the mosaic/clean flux scale is common to I, Q, U (I comes out 1-3 %
        # low in every group) and cancels in the ratio, leaving the noise: 3 sigma of Q/I = 3 rms_Q / I.
        freqs = [f for s in t["spws"] for f in truth["chan_freqs_hz"][str(s)]]
        bi, tq, tu, _ = sky.band_average(s1, freqs)
        sq = rms[int(round(px[0])), int(round(px[1])), 1, 0]
        su = rms[int(round(px[0])), int(round(px[1])), 2, 0]
        assert abs(q / i - tq / bi) < 3 * sq / i and abs(u / i - tu / bi) < 3 * su / i, (t["group"], q / i, tq / bi,
                                                                                        u / i, tu / bi, sq / i)
        assert abs(tu) > 10 * su  # the source is really polarised at this noise


def expected_pbcor_noise(tree, t, truth, shape, cs):
    """Thermal noise of the pbcor mosaic per pixel, from the simulated visibility noise:
    sigma(x) = 1 / sqrt(sum_p PB_p(x)^2 / sigma_p^2) (optimal linear mosaic), sigma_p from the
    truth sigma per spw and the unflagged RR/LL samples of pointing p, times the briggs factor."""
    from ccip_ops.simulate import observe

    ct = casa_env.tools()
    vis = str(tree.working / (truth["names"]["pims"] + "_split.ms"))
    tb = ct.table()
    tb.open(vis)
    fl, dd, fid = tb.getcol("FLAG"), tb.getcol("DATA_DESC_ID"), tb.getcol("FIELD_ID")
    tb.close()
    im = ct.imager()
    im.open(vis)
    im.selectvis(spw=t["group"], field=",".join(map(str, t["field_ids"])))
    im.defineimage(nx=shape[0], ny=shape[1], cellx=t["cell"], celly=t["cell"], stokes="I",
                   phasecenter=t["phasecenter"], mode="mfs")
    im.weight(type="briggs", robust=1.0)
    briggs = im.apparentsens()[2]  # noise relative to natural weighting
    im.close()
    pbp = observe.primary_beam_profiles(Path(vis), truth["preset"]["nchan"], tree.working, spws=t["spws"])
    xx, yy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    rc, inc = cs.referencevalue()["numeric"], cs.increment()["numeric"]
    inv = np.zeros(shape[:2])
    for f in truth["fields"]:
        if f["id"] not in t["field_ids"]:
            continue
        w = sum(((~fl[0][:, (dd == s) & (fid == f["id"])]).sum() + (~fl[3][:, (dd == s) & (fid == f["id"])]).sum())
                / truth["vis_sigma_jy"][str(s)] ** 2 for s in t["spws"])
        px = cs.topixel([np.radians(f["ra_deg"]), np.radians(f["dec_deg"]), rc[2], rc[3]])["numeric"]
        r = np.hypot(xx - px[0], yy - px[1]) * np.degrees(abs(inc[0])) * 60
        prof = np.mean([np.interp(r.ravel(), pbp[s][0], pbp[s][1].mean(axis=0)) for s in t["spws"]], axis=0)
        inv += prof.reshape(r.shape) ** 2 * w / briggs**2
    return 1 / np.sqrt(inv)


def test_residual_noise_is_thermal_and_rms_image_agrees(serial_run, truth):
    """Stokes V (no source above the noise) residual vs the thermal noise of the simulation;
    the rms image vs a robust rms measured on the residual.

    Stokes I residuals are not used for the thermal check: nterms=1 over a 4-spw group
    (up to 23 % fractional bandwidth) leaves spectral-slope artefacts around the bright
    source at 1.2-2.2x the thermal noise, a property of the recipe on wide groups."""
    _, tree = serial_run
    for r in results(tree):
        t = r["target"]
        base = tree.abs(r["images"]["image"]).as_posix()[: -len(".image.tt0")]
        rpb, cs, shape = read(base + ".image.residual.pbcor.tt0")
        pb, _, _ = read(base + ".pb.tt0")
        core = pb[:, :, 0, 0] > 0.9  # the well-covered mosaic, away from the edges
        sexp = expected_pbcor_noise(tree, t, truth, shape, cs)
        z = (rpb[:, :, 3, 0] / sexp)[core]
        ratio = 1.4826 * np.median(np.abs(z - np.median(z)))
        assert ratio == pytest.approx(1.0, abs=0.25), (t["group"], ratio)
        rms_img, _, _ = read(base + ".image.pbcor.tt0.rms")
        for k in range(4):
            y = rpb[:, :, k, 0][core]
            direct = 1.4826 * np.median(np.abs(y - np.median(y)))
            assert np.median(rms_img[:, :, k, 0][core]) == pytest.approx(direct, rel=0.15), (t["group"], "IQUV"[k])


@pytest.fixture(scope="module")
def imaging_tree(serial_run, tmp_path_factory, truth):
    """A fresh run tree with a copy of the restored MS and the masks of the e2e run."""
    _, tree = serial_run
    new = RunTree(tmp_path_factory.mktemp("img") / "run").make()
    vis = truth["names"]["pims"] + "_split.ms"
    shutil.copytree(tree.working / vis, new.working / vis)
    for m in tree.working.glob("*.mask"):
        if "QLcatmask" in m.name or "combined-tier2" in m.name:
            shutil.copytree(m, new.working / m.name)
    targets = json.loads(tree.targets_json.read_text())["targets"]
    t = next(x for x in targets if x["group"] == "10,11,12,13")
    return new, tree, ImagingTarget.from_json(t)


def _group_files(tree, t):
    return sorted(p.name[len(t.imagename) + len(".IQUV"):] for p in tree.working.glob(t.imagename + ".*"))


def test_killed_imaging_task_rerun_gives_identical_products(imaging_tree):
    new, ref_tree, t = imaging_tree
    code = ("import json,sys; from pathlib import Path; from ccip_ops.runtree import RunTree;"
            "from ccip_ops.model import ImagingTarget; from ccip_ops.stages import makeimages;"
            "makeimages.image_group(RunTree(Path(sys.argv[1])), ImagingTarget.from_json(sys.argv[2]))")
    p = subprocess.Popen([sys.executable, "-c", code, str(new.root), json.dumps(t.to_json())],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = new.working / "casa_commands.log"
    t0 = time.time()
    while time.time() - t0 < 300:  # kill it inside the iter1 tclean
        if log.exists() and ".iter1'" in log.read_text():
            time.sleep(2)
            break
        time.sleep(0.2)
    assert p.poll() is None, "the imaging process ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (new.results / f"{t.label}.json").exists()  # no result: the killed task is not complete
    from ccip_ops.stages import makeimages

    r = makeimages.image_group(new, t)
    assert r.status == "ok"
    assert set(_group_files(new, t)) == KEPT  # exactly the §4.3 products, nothing else of the group
    ref = json.loads((ref_tree.results / f"{t.label}.json").read_text())
    for kind, rel in r.images.items():
        a, _, _ = read(new.abs(rel))
        b, _, _ = read(ref_tree.abs(ref["images"][kind]))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(b).max())), err_msg=kind)


def test_tier_mask_of_another_shape_is_regridded_and_used(imaging_tree, truth):
    new, ref_tree, t = imaging_tree
    tk = casa_env.tasks()
    tier1 = next(new.working.glob("*QLcatmask-tier1.mask"))
    small = new.working / "tier1.small.mask"
    ia = casa_env.tools().image()
    ia.open(str(tier1))
    cs = ia.coordsys()
    ia.close()
    cs.setincrement(value=cs.increment()["numeric"] * np.array([1.6, 1.6, 1, 1]))
    cs.setreferencepixel(value=[100, 100, 0, 0])
    tk.imregrid(imagename=str(tier1), output=str(small), template={"csys": cs.torecord(), "shap": [200, 200, 1, 1]},
                interpolation="nearest", overwrite=True)
    assert read(small)[2][:2].tolist() == [200, 200]
    t2 = ImagingTarget.from_json({**t.to_json(), "masks": [new.rel(small), t.masks[1], "pb"],
                                  "imagename": naming.GroupNames(t.names.img + ".rg", t.label).imagename})
    from ccip_ops.stages import makeimages

    r = makeimages.image_group(new, t2)
    how = {m["iteration"]: m["how"] for m in r.qa["masks"]}
    assert how == {1: "regridded", 2: "copied"}
    cm, ccs, shape = read(new.working / f"{t2.imagename}.IQUV.iter1.cleanmask")
    assert list(shape[:2]) == list(t2.imsize)
    s1 = truth["sources"][0]
    v, _ = at_source(cm, ccs, s1, 0)
    assert v > 0.5  # the bright source lies inside the regridded mask
    # and tclean used it: the iter1 model has flux at the source
    model = read(new.working / f"{t2.imagename}.IQUV.iter3.model.tt0")[0]
    assert model[:, :, 0, 0].sum() > 0.05


def test_cutout_of_a_large_image_is_one_degree_plus_two_arcmin(tmp_path):
    from ccip_ops.stages.cutouts import cutout_box

    ct, tk = casa_env.tools(), casa_env.tasks()
    ia, cs = ct.image(), ct.coordsys()
    cs = cs.newcoordsys(direction=True, spectral=True, stokes=["I", "Q", "U", "V"])
    cs.setincrement(value=[-np.radians(5 / 3600), np.radians(5 / 3600)], type="direction")
    n = 800  # 800 x 5 arcsec = 1.11 deg > 1 deg + 2 arcmin
    cs.setreferencepixel(value=[n // 2, n // 2], type="direction")
    img = tmp_path / "big.image"
    ia.fromshape(str(img), [n, n, 4, 1], csys=cs.torecord(), overwrite=True)
    a = np.zeros((n, n, 4, 1), np.float32)
    a[n // 2, n // 2, 0, 0] = 1.0
    ia.putchunk(a)
    ia.close()
    box = cutout_box(n, n, 5.0, n // 2)
    side = round(3600 * (1 + 2 / 60) / 5.0)
    assert box == (n // 2 - side // 2, n // 2 - side // 2, n // 2 + side // 2 - 1, n // 2 + side // 2 - 1)
    tk.imsubimage(imagename=str(img), outfile=str(tmp_path / "big.subim"), box=",".join(map(str, box)))
    b, _, shape = read(tmp_path / "big.subim")
    assert list(shape[:2]) == [side, side]
    assert b[side // 2, side // 2, 0, 0] == 1.0  # centred as in §7
    # and the whole image when it is smaller
    assert cutout_box(320, 320, 5.0, 160) is None
