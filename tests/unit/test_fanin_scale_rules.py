"""Issue 15's rules without CASA: the rms box, where imdev runs, the fan-in slots, and the group workers."""
import math

import pytest

from ccip_ops import groupworkers, settings
from ccip_ops.heuristics.stats import from_casa, rms_box_arcsec, rms_margin_px, rms_region


def test_rms_box_is_nraos_60_arcsec_for_vlass_cells_and_scaled_only_for_coarse_ones():
    for bmaj in (2.5, 3.75, 5.0, 8.0):  # a low-frequency, low-declination VLASS beam keeps 60"
        assert rms_box_arcsec(0.6, bmaj) == 60.0
    assert rms_box_arcsec(1.0, 6.0) == 60.0
    assert rms_box_arcsec(4.0, 30.0) == pytest.approx(480.0)
    assert rms_box_arcsec(4.0, 2.0) == 60.0  # never below NRAO's


def test_imdev_region_is_the_cutout_and_a_margin_inside_the_image():
    # VLASS: 100-pixel box, 10-pixel grid: one box of margin covers half a box + 2 grid cells
    m = rms_margin_px(60.0, 0.6, 10)
    assert m == 100
    assert rms_margin_px(12.0, 1.0, 10) == math.ceil(6 + 21)  # small boxes: the interpolation's reach
    cut = (3150, 3150, 9349, 9349)
    assert rms_region(cut, 12500, 12500, m) == (3050, 3050, 9449, 9449)
    assert rms_region(None, 320, 320, m) is None
    assert rms_region((10, 10, 309, 309), 320, 320, 50) is None  # the margin reaches every edge
    assert rms_region((10, 100, 309, 200), 320, 320, 50) == (0, 50, 319, 250)


def test_casa_statistics_record_gives_the_robust_numbers():
    rec = {"npts": [10.0, 0.0], "median": [1.0, 0.0], "medabsdevmed": [2.0, 0.0], "max": [5.0, 0.0],
           "min": [-7.0, 0.0]}
    s = from_casa(rec, 0)
    assert s["peak"] == -7.0 and s["madrms"] == pytest.approx(2.9652) and s["max"] == 5.0
    assert math.isnan(from_casa(rec, 1)["median"])


def test_fanin_slots_never_exceed_the_pool():
    assert settings.fanin_slots({"CCIP_IMAGING_SLOTS": "3"}) == 1  # opt-in: one group at a time by default
    assert settings.fanin_slots({"CCIP_IMAGING_SLOTS": "3", "CCIP_FANIN_SLOTS": "3"}) == 3
    # never more than the capped pool (worker slots less the reserved one)
    assert settings.fanin_slots({"CCIP_IMAGING_SLOTS": "3", "CCIP_FANIN_SLOTS": "3", "CCIP_WORKER_SLOTS": "3"}) == 2
    assert settings.fanin_slots({"CCIP_IMAGING_SLOTS": "3", "CCIP_FANIN_SLOTS": "2"}) == 2
    assert settings.fanin_slots({"CCIP_IMAGING_SLOTS": "2", "CCIP_FANIN_SLOTS": "8"}) == 2
    with pytest.raises(ValueError, match="CCIP_FANIN_SLOTS"):
        settings.fanin_slots({"CCIP_FANIN_SLOTS": "0"})


def _square_or_fail(x):
    if x == 3:
        raise ValueError("three is bad")
    import os

    return x * x, os.getpid()


def test_parallel_map_keeps_order_reports_failures_and_uses_other_processes():
    import os

    items = [(x,) for x in range(5)]
    one = groupworkers.parallel_map(_square_or_fail, items, 1)
    two = groupworkers.parallel_map(_square_or_fail, items, 2)
    assert [v[0] for ok, v in one if ok] == [v[0] for ok, v in two if ok] == [0, 1, 4, 16]
    assert not one[3][0] and str(one[3][1]) == "three is bad" and two[3] == (False, "three is bad")
    assert {v[1] for ok, v in one if ok} == {os.getpid()}
    assert os.getpid() not in {v[1] for ok, v in two if ok}
