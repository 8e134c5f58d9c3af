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
