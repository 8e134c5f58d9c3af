"""hifv_restorepims (stage 4, spec §2): bring the PIMS to the state of the SE-CONT final imaging.

Reads ``working/reimaging_resources.tgz`` and the transformed MS ``<name>_split.ms``.
In the NRAO order:

1. check the tarball and its six resources and extract them (:mod:`.restore_resources`);
2. back up the initial flags as ``hifv_restorepims_initial`` (once);
3. fill MODEL_DATA from the SE model images with the SE stage-1 heuristics of the SEIP list's
   imaging mode (:func:`.heuristics.se.seip_mode`): for the awproject modes first a PSF-only
   tclean with the ``wbawp=False`` CF cache; iter0 with ``calcres=False``; (awproject) the iter0
   PSF replaced by the ``wbawp=False`` one; the model copied in under the iter0 name; then a
   predict-only serial tclean (CF caches: :mod:`.restore_cfcache`); on a
   re-run, first restore ``hifv_restorepims_initial``, re-initialise the weights and drop
   CORRECTED_DATA (otherwise statwt would write SIGMA instead of WEIGHT);
4. restore the SE flags ``statwt_1``; 5. re-run statwt with the SE settings;
6. apply the selfcal table with the SE settings (fills CORRECTED_DATA).

Entry point :func:`restore_pims`; returns the mask list ``[tier1, tier2]`` (paths relative to the
run tree) and whether the MS had been restored before.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import naming
from ..casatables import columns, table
from ..heuristics import se
from ..model import SeipTarget
from ..runtree import RunTree, read_json, remove, write_json
from .. import settings
from ..exceptions import InputError, ResourceLimitError
from ..heuristics import memory
from ._casa import Casa
from .restore_cfcache import cf_caches
from .restore_resources import check_and_extract, check_grids

log = logging.getLogger("ccip")


@dataclass(frozen=True)
class Restored:
    masks: tuple[str, ...]  # [tier1, tier2], relative to the run tree
    rerun: bool  # the MS had a MODEL_DATA column already

    @property
    def notes(self) -> str:
        return "re-run on a restored MS" if self.rerun else "restored FLAG, WEIGHT, MODEL_DATA, CORRECTED_DATA"


def _flagversion_exists(vis: Path, name: str) -> bool:
    return (Path(naming.flagversions(str(vis))) / f"flags.{name}").exists()


def restore_pims(tree: RunTree, vis_rel: str, seip: SeipTarget) -> Restored:
    try:  # before any work: a mode whose prediction cannot be reproduced is refused
        mode = se.seip_mode(seip.imaging_mode, seip.heuristics.get("gridder"), seip.heuristics.get("wprojplanes"))
    except se.UnrestorableMode as e:
        raise InputError(f"{tree.working / 'SEIP_parameter.list'}: {e}") from None
    _check_memory(seip)
    casa = Casa(tree.working, "restorepims")
    w = tree.working
    vis = tree.abs(vis_rel)
    img = seip.imagename
    res = check_and_extract(tree, vis.name, img)
    seip = check_grids(tree, vis, seip, res)  # before any CASA work (issue 14)
    # 2. initial flag backup
    if not _flagversion_exists(vis, "hifv_restorepims_initial"):
        casa("flagmanager", vis=str(vis), mode="save", versionname="hifv_restorepims_initial", merge="replace",
             comment="flagversion before running hifv_restorepims()")
    else:
        log.warning("flag version hifv_restorepims_initial already exists: not saved again")
    # 3. model column from the SE selfcal model
    if (vis / "SOURCE").exists() and "SOURCE_MODEL" in columns(vis / "SOURCE"):
        casa("delmod", vis=str(vis), otf=True, scr=False)
    rerun = "MODEL_DATA" in columns(vis)
    if rerun:
        log.warning("MODEL_DATA already exists in %s: restoring flags hifv_restorepims_initial and "
                    "re-initialising weights so the prediction matches SE", vis.name)
        if _flagversion_exists(vis, "hifv_restorepims_initial"):
            casa("flagmanager", vis=str(vis), mode="restore", versionname="hifv_restorepims_initial")
        casa("initweights", vis=str(vis), wtmode="nyq")
        # Departure from NRAO: with a CORRECTED_DATA column present, statwt(datacolumn='residual_data')
        # updates SIGMA but not WEIGHT, so the re-run would keep Nyquist weights. SE ran statwt before
        # selfcal, without that column; drop it (applycal below writes it again).
        with table(vis, nomodify=False) as tb:
            if "CORRECTED_DATA" in tb.colnames():
                tb.removecols(["CORRECTED_DATA"])
    model = res["model_images"][0]
    restore_imagename = model[: model.rindex(".model")]
    root, tmp = naming.restore_root(img), naming.restore_tmp_root(img)
    for p in [*w.glob(root + ".*"), *w.glob(tmp + ".*")]:  # a retry starts clean
        remove(p)
    targs = {**se.stage1_tclean(str(vis), str(w / root), list(seip.imsize), seip.cell, seip.phasecenter, mode),
             **dict(seip.heuristics), "niter": 0}
    cf = None
    if mode.awproject:
        cf = cf_caches(tree, seip.cfcache, img)
        # the PSF with the no-wide-band-A-projection CF cache, kept aside (VLASS memo 15 §2.2)
        casa("tclean", **{**targs, "cfcache": cf.nowb, "wbawp": False}, calcres=False)
        _move_images(w, root + ".psf", tmp + ".psf")
        for p in w.glob(root + ".*"):
            remove(p)
        targs["cfcache"] = cf.wb
    casa("tclean", **targs, calcres=False)
    if mode.awproject:
        _move_images(w, tmp + ".psf", root + ".psf")
    for p in sorted(w.glob(restore_imagename + ".*")):
        dst = w / (root + p.name[len(restore_imagename):])
        remove(dst)
        shutil.copytree(p, dst)
    casa("tclean", **targs, calcpsf=False, calcres=False, restart=True, savemodel="modelcolumn")
    # 4. the SE flags; 5. statwt with the SE settings; 6. the selfcal table
    casa("flagmanager", vis=str(vis), mode="restore", versionname="statwt_1")
    casa("statwt", vis=str(vis), **se.STATWT, flagbackup=False)
    with table(vis / "SPECTRAL_WINDOW") as tb:
        nspw = tb.nrows()
    lowest = min(int(s) for s in _spw_ids(vis))
    casa("applycal", **se.selfcal_applycal(str(vis), str(w / res["selfcal_table"][0]), nspw, lowest))
    out = Restored(masks=(tree.rel(w / res["tier1_mask"][0]), tree.rel(w / res["tier2_mask"][0])), rerun=rerun)
    data = read_json(tree.stage_data("restorepims"), {})
    write_json(tree.stage_data("restorepims"), {**data, "extracted": res, "masks": list(out.masks), "rerun": rerun,
                                                "imaging_mode": mode.imaging_mode, "gridder": mode.gridder,
                                                "wprojplanes": mode.wprojplanes,
                                                "cfcache": cf.to_json() if cf else None,
                                                "casa_calls": casa.records()})
    return out


def _check_memory(seip: SeipTarget) -> None:
    """The SE model prediction sized before any work, as each group's imaging is (issue 14 item 4)."""
    stokes, nterms = str(seip.heuristics.get("stokes", "I")), int(seip.heuristics.get("nterms", 2))
    limit = settings.worker_memory_gib()
    ok, est = memory.fits(seip.imsize, limit, stokes, nterms)
    if not ok:
        raise ResourceLimitError(
            f"SE model prediction ({seip.imaging_mode}) at {seip.imsize[0]}x{seip.imsize[1]} px (stokes {stokes}, "
            f"nterms {nterms}) needs an estimated {est:.1f} GiB per tclean (bench/results/imaging_scale.json), "
            f"over the worker limit of {limit:.1f} GiB (CCIP_WORKER_MEMORY_GB)")


def _move_images(w: Path, src_prefix: str, dst_prefix: str) -> None:
    """``<src_prefix>*`` (e.g. ``.psf.tt0``, ``.psf.tt1``) renamed to ``<dst_prefix>*``, replacing."""
    for p in sorted(w.glob(src_prefix + "*")):
        dst = w / (dst_prefix + p.name[len(src_prefix):])
        remove(dst)
        shutil.move(str(p), str(dst))


def _spw_ids(vis: Path) -> list[int]:
    with table(vis / "DATA_DESCRIPTION") as tb:
        spw = tb.getcol("SPECTRAL_WINDOW_ID")
    with table(vis) as tb:
        dd = set(tb.getcol("DATA_DESC_ID").tolist())
    return sorted({int(spw[d]) for d in dd})
