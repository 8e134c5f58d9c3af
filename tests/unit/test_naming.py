"""Every product name comes from ccip_ops.naming and reads back into the parts that made it."""
import itertools

import pytest

from ccip_ops import naming

IMG = "VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1"


@pytest.mark.parametrize("group", ["2", "2,3", "10,11,12,13", "2,17"])
def test_group_label_round_trip(group):
    assert naming.label_group(naming.group_label(group)) == group


def test_every_product_name_round_trips():
    names = set()
    for kind, n, stokes, prefix, rms, subim, com, fits in itertools.product(
            naming.TT_KINDS + naming.PLAIN_KINDS, range(4), ("IQUV", "IQU", "V"), ("s7_0.", ""),
            (False, True), (False, True), (False, True), (False, True)):
        p = naming.ProductName(IMG, "spw2_3", kind, n, stokes, prefix, rms, subim, com, fits)
        name = p.format()
        assert naming.parse_product(name) == p, name
        names.add(name)
    assert len(names) == len(naming.TT_KINDS + naming.PLAIN_KINDS) * 4 * 3 * 2 ** 5  # no two parts give one name


def test_the_names_of_one_group_are_the_nrao_ones():
    g = naming.GroupNames(IMG, naming.group_label("2,3"))
    assert g.imagename == f"s7_0.{IMG}.spw2_3"
    assert naming.group_names(g.imagename) == g
    assert g.iteration_root(0) == f"s7_0.{IMG}.spw2_3.IQUV.iter0"
    assert g.name("image") == f"s7_0.{IMG}.spw2_3.IQUV.iter3.image.tt0"
    assert g.name("cleanmask", 1) == f"s7_0.{IMG}.spw2_3.IQUV.iter1.cleanmask"
    assert g.name("mask") == f"s7_0.{IMG}.spw2_3.IQUV.iter3.mask"
    assert g.image_pbcor == f"s7_0.{IMG}.spw2_3.IQUV.iter3.image.pbcor.tt0"
    assert g.residual_pbcor == f"s7_0.{IMG}.spw2_3.IQUV.iter3.image.residual.pbcor.tt0"
    assert g.rms == g.image_pbcor + ".rms"
    cut = naming.subim(g.image_pbcor)
    assert naming.split_stokes(cut, "V") == f"s7_0.{IMG}.spw2_3.V.iter3.image.pbcor.tt0.subim"
    fits = naming.exported(cut, "IQU").format()
    assert fits == f"{IMG}.spw2_3.IQU.iter3.image.pbcor.tt0.subim.fits"
    assert naming.exported(naming.subim(g.rms), "V").format() == f"{IMG}.spw2_3.V.iter3.image.pbcor.tt0.rms.subim.fits"
    assert naming.common_beam(fits) == f"{IMG}.spw2_3.IQU.iter3.image.pbcor.tt0.subim.com.fits"
    assert naming.strip_stage_prefix(g.image_pbcor) == g.image_pbcor[len("s7_0."):]


@pytest.mark.parametrize("bad", ["", "x.fits", f"{IMG}.spw2_3.IQUV.iter3.image", f"{IMG}.spw2_3.IQUV.iter3.mask.tt0",
                                 f"{IMG}.spwX.IQUV.iter3.image.tt0", f"{IMG}.spw2_3.IQUV.iter3.image.tt0.fits.subim"])
def test_what_is_not_a_product_name_is_refused(bad):
    with pytest.raises(ValueError):
        naming.parse_product(bad)


def test_se_and_ms_names_match_the_resource_patterns():
    import fnmatch

    vis = naming.split_vis("VLASS2.1.sb1.eb2.58863.0123")
    assert vis == "VLASS2.1.sb1.eb2.58863.0123_split.ms"
    pats = naming.resource_patterns(vis, "SEIMG")
    assert fnmatch.fnmatch(naming.flagversions(vis), pats["flag_dir"])
    assert fnmatch.fnmatch(naming.se_selfcal_table(vis), pats["selfcal_table"])
    assert fnmatch.fnmatch(naming.se_model_root("SEIMG") + ".model.tt0", pats["model_images"])
    assert fnmatch.fnmatch(naming.se_tier1_mask("SEIMG"), pats["tier1_mask"])
    assert fnmatch.fnmatch(naming.se_tier2_mask("SEIMG"), pats["tier2_mask"])
    assert naming.flag_template(vis) == "VLASS2.1.sb1.eb2.58863.0123_split.flagtargetstemplate.txt"
    assert naming.restore_root("SEIMG") == "s4_0.SEIMG.I.iter0"


@pytest.mark.parametrize("good,ok", [("T10t02.J005000-023000", True), ("T10t02.J005000+023000", True),
                                     ("T10t02.J005000-023000\n", False), ("T10t02.J٠٠5000-023000", False),
                                     ("../T10t02.J005000-023000", False)])
def test_field_id_is_ascii_and_whole(good, ok):
    assert naming.is_field_id(good) is ok


def test_run_ids_become_folder_names():
    assert naming.run_folder("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00_00_00"
    assert "/" not in naming.run_folder("a/../b")
