"""Pure parts of the archive checks of issue 14 item 3 (no CASA run): spw selections and the
grid comparison of SE images."""
import math
from dataclasses import replace

import pytest

from ccip_ops.exceptions import InputError
from ccip_ops.heuristics import coordsys
from ccip_ops.listvalues import spw_ids

CELL = math.radians(5 / 3600)
G = coordsys.Grid(shape=(320, 320, 1, 1), frame="J2000", projection="SIN", refpix=(160, 160),
                  refval_rad=(0.2181661564992912, -0.04363323129985824), incr_rad=(-CELL, CELL), stokes=("I",),
                  freq_ref_hz=3e9, freq_incr_hz=2.048e9)


def test_spw_ids_one_rule_for_the_seip_spw():
    assert spw_ids("2~17", "x") == set(range(2, 18))
    assert spw_ids("2,3,5~6", "x") == {2, 3, 5, 6}
    assert spw_ids(["2~3", "5"], "x") == {2, 3, 5}
    for bad, why in (("2~x", "spw ids and ranges"), ("", "spw ids and ranges"), ("*", "spw ids and ranges"),
                     ("2,3:0~15", "spw ids and ranges"), ("9~2", "runs backwards"), ("0~99999999", "above 1023"),
                     ("2\n", "spw ids and ranges"), ("\u0662", "spw ids and ranges")):
        with pytest.raises(InputError, match=f"SEIP_parameter.list: spw = .* is invalid: .*{why}"):
            spw_ids(bad, "SEIP_parameter.list: spw")


def test_grid_differences():
    assert coordsys._differences(G, G) == []
    # another size on the same grid: no difference apart from the size
    assert coordsys._differences(replace(G, shape=(384, 384, 1, 1), refpix=(192, 192)), G) == []
    assert coordsys._differences(replace(G, incr_rad=(-1.1 * CELL, 1.1 * CELL)), G) == ["increment (cell)"]
    assert coordsys._differences(replace(G, refval_rad=(G.refval_rad[0] + CELL, G.refval_rad[1])), G) == [
        "reference value (phase centre)"]
    # RA given as -x or 2 pi - x is one direction
    assert coordsys._differences(replace(G, refval_rad=(G.refval_rad[0] - 2 * math.pi, G.refval_rad[1])), G) == []
    assert coordsys._differences(replace(G, refpix=(160.5, 160)), G) == ["reference pixel (not on one pixel grid)"]
    # the band of 2~17 measured +1.2 % in tclean's image passes; an edge spw fewer (-6.25 %) does not
    assert coordsys._differences(replace(G, freq_incr_hz=2.0729e9), G) == []
    assert coordsys._differences(replace(G, freq_incr_hz=1.92e9), G) == [
        "spectral reference/increment (reffreq or spw selection)"]
    assert "Stokes" in coordsys._differences(replace(G, stokes=("I", "Q", "U", "V"), shape=(320, 320, 4, 1)), G)
    assert "increment (5, 5) arcsec" not in G.describe() and "increment (-5, 5) arcsec" in G.describe()
