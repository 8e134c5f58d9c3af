"""The simulated field: the SE-CONT products are what they claim, and the sky is right.

Physics tolerances: a 5 % flux window is ~10x the image noise at the bright source and
leaves room for the mosaic and clean approximations; Q/I and U/I within 0.01 is ~4 sigma
of the Stokes Q/U noise (~0.1 mJy) relative to I (~90 mJy) plus the same approximations.
"""
import fnmatch
import shutil
import tarfile

import numpy as np
import pytest

from ccip_ops import casa_env
from ccip_ops.simulate import sky
from ccip_ops.naming import resource_patterns

pytestmark = pytest.mark.casa


def test_archive_folder_layout(tiny_field, truth):
    names = sorted(p.name for p in tiny_field.iterdir())
    pims = [n for n in names if n.endswith(".ms")]
    assert len(pims) == 1 and pims[0] == truth["names"]["pims"] + ".ms"
    for f in ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list", "truth.json"):
        assert f in names
    assert not [n for n in names if n.startswith(".") or "building" in n]


def test_tgz_has_the_six_resources(tiny_field, truth):
    vis = truth["names"]["pims"] + "_split.ms"
    pats = resource_patterns(vis, truth["names"]["seip_imagename"])
    with tarfile.open(tiny_field / "reimaging_resources.tgz", "r:gz") as tar:
        members = tar.getnames()
    for key, pat in pats.items():
        assert any(fnmatch.fnmatch(m, pat) for m in members), key
    assert not any(m.startswith("/") or ".." in m for m in members)


def test_se_products_open_in_casa(tiny_field, truth, tmp_path):
    with tarfile.open(tiny_field / "reimaging_resources.tgz", "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    ct = casa_env.tools()
    tb, ia = ct.table(), ct.image()
    cal = next(tmp_path.glob("*.phase-self-cal.tbl"))
    tb.open(str(cal))
    assert tb.nrows() > 0 and "CPARAM" in tb.colnames()
    assert tb.getkeyword("VisCal") == "G Jones"
    tb.close()
    fv = next(tmp_path.glob("*.flagversions"))
    assert (fv / "flags.statwt_1").is_dir()
    assert "statwt_1" in (fv / "FLAG_VERSION_LIST").read_text()
    for pat in ("*.QLcatmask-tier1.mask", "*.combined-tier2.mask", "*.I.iter1.model.tt0", "*.I.iter1.model.tt1"):
        img = next(tmp_path.glob(pat))
        ia.open(str(img))
        a = ia.getchunk()
        ia.close()
        assert np.isfinite(a).all()
        if "mask" in pat:
            assert set(np.unique(a)) <= {0.0, 1.0} and a.sum() > 0
    # the model holds the bright source: clean components > 0 near S1
    assert truth["se_cont"]["tier1_sources"] >= 2


def test_sky_physics(tiny_field, truth, tmp_path):
    """Calibrate the PIMS with the SE selfcal table and image one clean spw group."""
    from scipy.ndimage import map_coordinates

    tk, ct = casa_env.tasks(), casa_env.tools()
    casa_env.set_log(tmp_path / "casa.log")
    ms = tmp_path / "p.ms"
    shutil.copytree(next(tiny_field.glob("*.ms")), ms)
    with tarfile.open(tiny_field / "reimaging_resources.tgz", "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    cal = next(tmp_path.glob("*.phase-self-cal.tbl"))
    tk.applycal(vis=str(ms), gaintable=[str(cal)], interp=["nearest"], spwmap=[18 * [2]], parang=False,
                applymode="calonly", calwt=False, flagbackup=False)
    group = "10,11,12,13"  # no RFI injected in these spws
    p = truth["preset"]
    pc = [ln for ln in (tiny_field / "CCIP_parameter.list").read_text().splitlines() if ln.startswith("phasecenter")]
    pc = pc[0].split("=", 1)[1].strip().strip("'")
    img = str(tmp_path / "img")
    tk.tclean(vis=str(ms), imagename=img, spw=group, datacolumn="corrected", stokes="IQUV", specmode="mfs",
              deconvolver="mtmfs", nterms=1, gridder="mosaic", imsize=[p["imsize"]] * 2, cell=f"{p['cell_arcsec']}arcsec",
              phasecenter=pc, weighting="briggs", robust=1.0, niter=300, nsigma=3.0, pblimit=0.1, pbcor=True,
              parallel=False)
    ia = ct.image()
    ia.open(img + ".image.tt0.pbcor")
    a = ia.getchunk()
    cs = ia.coordsys()
    ia.close()
    s1 = truth["sources"][0]
    w = cs.referencevalue()["numeric"].copy()
    w[0], w[1] = np.radians(s1["ra_deg"]), np.radians(s1["dec_deg"])
    px = cs.topixel(w)["numeric"]
    i, q, u, v = (float(map_coordinates(a[:, :, k, 0], [[px[0]], [px[1]]], order=3)[0]) for k in range(4))
    freqs = [f for s in group.split(",") for f in truth["chan_freqs_hz"][s]]
    ti, tq, tu, tv = sky.band_average(s1, freqs)
    assert i == pytest.approx(ti, rel=0.05)
    assert abs(q / i - tq / ti) < 0.01 and abs(u / i - tu / ti) < 0.01
    # the polarisation is really there (the test could not pass with Q = U = 0)
    assert abs(tu / ti) > 0.05
