"""The fan-in at scale (issue 15) on small synthetic groups (no tclean): imdev on the cutout plus a
margin gives the whole-image imdev's values inside the cutout, the box is written into the rms
image's history, and two workers give the same products as one."""
import numpy as np
import pytest

from ccip_ops import casa_env, casaimage, fanin
from ccip_ops.model import FanIn
from ccip_ops.runtree import RunTree
from ccip_ops.simulate.products import write_group
from ccip_ops.stages import cutouts, pbcor, rmsimages

pytestmark = pytest.mark.casa
N, CELL = 320, 15.0  # 1.33 deg > 1 deg + 2': a 248-pixel cutout inside the image


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    tree = RunTree(tmp_path_factory.mktemp("fanin_scale") / "run")
    res = [write_group(tree, k, N, cell_arcsec=CELL, beam_arcsec=12.0, nsources=6, light=True) for k in range(2)]
    fan = FanIn(targets=tuple(r.target for r in res), results=tuple(res))
    return tree, fanin.for_each_group(tree, fan, "pbcor", pbcor.pbcor_group)


def _pixels(tree, rel):
    return casaimage.pixels(tree.abs(rel))


def test_rms_on_the_cutout_equals_a_whole_image_imdev(groups):
    tree, fan = groups
    r = rmsimages.rms_image(tree, fan.results[0])
    region, box = r.qa["rms_region"], cutouts.cutout_geometry(tree.abs(r.images["image"]))[2]
    assert region is not None and region[0] > 0 and region[2] < N - 1, "the margin must stay inside the image"
    whole = tree.working / "whole.rms"
    casa_env.tasks().imdev(imagename=str(tree.abs(r.images["image_pbcor"])), outfile=str(whole),
                           xlength=r.qa["rms_box"], ylength=r.qa["rms_box"], **rmsimages.IMDEV)
    ia = casa_env.tools().image()
    part = _pixels(tree, r.images["rms"])
    ref = casaimage.pixels(whole)
    assert part.shape[:2] == (region[2] - region[0] + 1, region[3] - region[1] + 1)
    inside = part[box[0] - region[0]:box[2] - region[0] + 1, box[1] - region[1]:box[3] - region[1] + 1]
    np.testing.assert_allclose(inside, ref[box[0]:box[2] + 1, box[1]:box[3] + 1], rtol=1e-6, atol=0)
    hist = " ".join(casaimage.history(tree.abs(r.images["rms"])))
    assert f"imdev box {r.qa['rms_box']}" in hist and "one box of margin" in hist
    # the rms cutout is the same sky box as the image's
    c = cutouts.cut_group(tree, r)
    np.testing.assert_array_equal(_pixels(tree, c.images["rms_subim"]), inside)
    ia.open(str(tree.abs(c.images["rms_subim"])))
    ref_world = ia.toworld([0, 0, 0, 0])["numeric"][:2]
    ia.done()
    ia.open(str(tree.abs(c.images["image_subim"])))
    np.testing.assert_allclose(ia.toworld([0, 0, 0, 0])["numeric"][:2], ref_world, rtol=0, atol=1e-12)
    ia.done()


def test_two_workers_give_the_products_of_one(groups):
    tree, fan = groups
    one = fanin.for_each_group(tree, fanin.for_each_group(tree, fan, "rmsimages", rmsimages.rms_image, 1),
                               "cutouts", cutouts.cut_group, 1)
    first = {(r.label, k): _pixels(tree, r.images[f"{k}_subim"]) for r in one.results for k in ("rms", "image_pbcor")}
    two = fanin.for_each_group(tree, fanin.for_each_group(tree, fan, "rmsimages", rmsimages.rms_image, 2),
                               "cutouts", cutouts.cut_group, 2)
    assert [r.label for r in two.results] == [r.label for r in one.results] and not two.failed
    for r1, r2 in zip(one.results, two.results):
        assert r2.qa["stats"] == r1.qa["stats"] and r2.qa["VLASSRMS"] == r1.qa["VLASSRMS"]
        for k in ("rms", "image_pbcor"):
            np.testing.assert_array_equal(_pixels(tree, r2.images[f"{k}_subim"]), first[(r1.label, k)])


def test_cutout_statistics_equal_numpy_over_the_cutout(groups):
    from ccip_ops.heuristics.stats import robust

    tree, fan = groups
    p = tree.abs(fan.results[1].images["image_pbcor"])
    a = casaimage.pixels(p)
    a[3, 4, 0, 0] = np.nan  # a blanked pixel is left out, as numpy's isfinite does
    with casaimage.opened(p) as ia:
        ia.putchunk(a)
    got = cutouts.stokes_stats(str(p))
    for k, s in enumerate("IQUV"):
        want = robust(a[:, :, k, :])
        for key in ("median", "madrms", "max", "min", "peak"):
            assert got[s][key] == pytest.approx(want[key], rel=1e-6, abs=1e-12), (s, key)


def test_a_group_sharing_pixels_has_its_own_coordinates_and_leaves_the_first_intact(tmp_path):
    """bench/vlass_scale.py --share-pixels: a later group's images hard-link the first group's pixel
    files (no second copy on disk) but carry their own frequency, beam and keywords; a stage writing
    the later group's products leaves the first group's pixels as they were."""
    tree = RunTree(tmp_path / "run")
    first = write_group(tree, 0, 64, cell_arcsec=CELL, beam_arcsec=12.0, nsources=2, light=True)
    before = _pixels(tree, first.images["image"])
    later = write_group(tree, 1, 64, cell_arcsec=CELL, beam_arcsec=12.0, nsources=2, light=True, pixels_from=first)
    for kind in ("image", "residual", "psf", "pb", "mask"):
        data = [f for f in tree.abs(later.images[kind]).iterdir() if "_TSM" in f.name]
        assert data and all(f.stat().st_nlink == 2 for f in data), kind
    np.testing.assert_array_equal(_pixels(tree, later.images["image"]), before)
    with casaimage.opened(tree.abs(later.images["image"])) as ia:
        freq = ia.coordsys().referencevalue(type="spectral")["numeric"][0]
        beam = ia.restoringbeam(polarization=0)["major"]["value"]
    assert freq == pytest.approx(later.target.reffreq_hz) and freq != pytest.approx(first.target.reffreq_hz)
    assert beam == pytest.approx(later.beam.bmaj)
    assert casaimage.miscinfo(tree.abs(later.images["image"]))["VLASSSPW"] == "4~5"
    pbcor.pbcor_group(tree, later)
    np.testing.assert_array_equal(_pixels(tree, first.images["image"]), before)
