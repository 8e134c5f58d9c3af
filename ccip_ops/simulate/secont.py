"""Run the VLASS-SE-CONT steps that leave the products the cube pipeline restores from.

On a copy of the PIMS, in an SE working directory, in the SE recipe's order:
transform (``<name>_split.ms``, ``initweights(nyq)``) -> stage-5 imaging (Stokes I, mtmfs
nterms=2 at 3 GHz, robust -2, Tier-1 mask from the "QL catalogue", ``savemodel``) ->
checkflag (clip of the residual RFI) -> statwt (VLASS-SE settings; its flag backup is
``statwt_1``) -> phase self-calibration (gaincal with the SE settings) and applycal ->
Tier-2 combined mask. The resources are packed into ``reimaging_resources.tgz`` with the
member names of spec/ccip_reference.md §2.2, and the final SE state (FLAG, WEIGHT,
CORRECTED_DATA) is kept so the restore stage can be checked against it.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np

from .. import casa_env, casaimage, naming
from ..heuristics import se
from .observe import RFI_CLIP_JY

REFANT = "W01"


def _circle_mask(template: str, out: str, sources: list[dict], radius_arcsec: float, min_flux: float) -> int:
    """A Stokes-I mask on ``template``'s grid with circles at catalogue sources."""
    ct = casa_env.tools()
    ia = ct.image()
    ia.fromimage(outfile=out, infile=template, overwrite=True)
    ia.close()
    ia.open(out)
    cs = ia.coordsys()
    shape = ia.shape()
    cell = abs(cs.increment()["numeric"][0]) * 206264.80624709636
    data = np.zeros(shape, dtype=np.float32)
    yy, xx = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]))
    n = 0
    for s in sources:
        if s["flux_3ghz_jy"] < min_flux:
            continue
        w = cs.referencevalue()["numeric"].copy()
        w[0], w[1] = np.radians(s["ra_deg"]), np.radians(s["dec_deg"])
        px = cs.topixel(w)["numeric"]
        inside = (xx - px[0]) ** 2 + (yy - px[1]) ** 2 <= (radius_arcsec / cell) ** 2
        if inside.any():
            data[inside, ...] = 1.0
            n += 1
    ia.putchunk(data)
    ia.done()
    cs.done()
    return n


def _pixels(image: str) -> np.ndarray:
    return casaimage.pixels(image)


def _write_like(template: str, out: str, data: np.ndarray) -> None:
    """A new image ``out`` on ``template``'s grid holding ``data``."""
    ia = casa_env.tools().image()
    ia.fromimage(outfile=out, infile=template, overwrite=True)
    ia.putchunk(data.astype(np.float32))
    ia.done()


def _threshold_mask(image: str, out: str, nsigma: float) -> None:
    a = _pixels(image)
    rms = 1.4826 * np.median(np.abs(a - np.median(a)))
    _write_like(image, out, a > nsigma * rms)


def _combine_masks(a: str, b: str, out: str) -> None:
    _write_like(a, out, np.maximum(_pixels(a), _pixels(b)))


def _move(sedir: Path, src_prefix: str, dst_prefix: str, copy: bool = False, skip: str | None = None) -> None:
    for p in sorted(sedir.glob(src_prefix + "*")):
        if skip and p.name.endswith(skip):
            continue
        dst = sedir / (dst_prefix + p.name[len(src_prefix):])
        shutil.rmtree(dst, ignore_errors=True)
        (shutil.copytree if copy else shutil.move)(str(p), str(dst))


def _stage1_awproject(tk, targs, sedir: Path, img: str, sources: list[dict]) -> tuple[str, int]:
    """SE stage-1 imaging with aw-projection, as NRAO's ``_do_iterative_vlass_se_imaging`` runs it:
    PSF with the wbawp=False CF cache kept aside; iter0 with the wide-band cache; its PSF replaced by
    the wbawp=False one; iter0 copied to iter1 (no mask) and cleaned in the Tier-1 mask with
    ``savemodel='modelcolumn'``. Returns the Tier-1 mask and the number of catalogue sources in it."""
    iter0, model_root = naming.se_image_root(img, 0), naming.se_model_root(img)
    tmp = naming.se_tmp_root(img)
    wb = str(sedir / naming.cfcache(naming.SE_IMAGING_STAGE, img, True))
    nowb = str(sedir / naming.cfcache(naming.SE_IMAGING_STAGE, img, False))
    tk.tclean(**{**targs(iter0), "cfcache": nowb, "wbawp": False}, niter=0, calcres=False)
    _move(sedir, iter0 + ".psf", tmp + ".psf")
    for p in sedir.glob(iter0 + ".*"):
        shutil.rmtree(p)
    tk.tclean(**targs(iter0), cfcache=wb, niter=0)
    _move(sedir, tmp + ".psf", iter0 + ".psf")
    tier1 = str(sedir / naming.se_tier1_mask(img))
    n_cat = _circle_mask(str(sedir / iter0) + ".pb.tt0", tier1, sources, radius_arcsec=40.0, min_flux=0.005)
    _move(sedir, iter0 + ".", model_root + ".", copy=True, skip=".mask")
    tk.tclean(**targs(model_root), cfcache=wb, niter=2000, nsigma=3.0, cycleniter=500, usemask="user",
              mask=tier1, savemodel="modelcolumn", restart=True, calcpsf=False, calcres=False)
    return tier1, n_cat


def run_se_cont(pims: Path, sedir: Path, seip_imagename: str, imsize: int, cell: str,
                phasecenter: str, sources: list[dict], spws: str, out_tgz: Path, out_state: Path,
                se_mode: str = se.MOSAIC_MODE) -> dict:
    """Run the SE-CONT steps in ``sedir``; write the tarball and the SE state file."""
    mode = se.seip_mode(se_mode)
    tk = casa_env.tasks()
    ct = casa_env.tools()
    sedir.mkdir(parents=True, exist_ok=True)
    vis_name = naming.split_vis(naming.ms_root(pims.name))
    vis = str(sedir / vis_name)
    img = seip_imagename
    # SE stage 3: transform
    tk.mstransform(vis=str(pims), outputvis=vis, spw=spws, datacolumn="data", reindex=False)
    tk.initweights(vis=vis, wtmode="nyq")
    # SE stage 5: iter0 for the grid, Tier-1 mask from the catalogue, iter1 with savemodel
    if mode.awproject:
        tier1, n_cat = _stage1_awproject(
            tk, lambda name: se.stage1_tclean(vis, str(sedir / name), [imsize, imsize], cell, phasecenter, mode),
            sedir, img, sources)
        model_root = str(sedir / naming.se_model_root(img))
    else:
        iter0, model_root = str(sedir / naming.se_image_root(img, 0)), str(sedir / naming.se_model_root(img))
        tk.tclean(**se.stage1_tclean(vis, iter0, [imsize, imsize], cell, phasecenter), niter=0)
        tier1 = str(sedir / naming.se_tier1_mask(img))
        n_cat = _circle_mask(iter0 + ".pb.tt0", tier1, sources, radius_arcsec=40.0, min_flux=0.005)
        tk.tclean(**se.stage1_tclean(vis, model_root, [imsize, imsize], cell, phasecenter),
                  niter=2000, nsigma=3.0, cycleniter=500, usemask="user", mask=tier1,
                  savemodel="modelcolumn")
    # SE stage 6: checkflag (the residual RFI spikes)
    tk.flagdata(vis=vis, mode="clip", datacolumn="data", clipminmax=[0.0, RFI_CLIP_JY],
                clipoutside=True, correlation="ABS_ALL", flagbackup=False)
    # SE stage 7: statwt, VLASS-SE settings; its own flag backup is statwt_1
    tk.statwt(vis=vis, **se.STATWT)
    # SE stage 8: phase self-calibration
    caltable = str(sedir / naming.se_selfcal_table(vis_name))
    tk.gaincal(vis=vis, caltable=caltable, solint="inf", combine="spw,field", gaintype="G",
               calmode="p", minsnr=5.0, minblperant=4, refant=REFANT, refantmode="strict",
               parang=False)
    tb = ct.table()
    tb.open(vis + "/SPECTRAL_WINDOW")
    nspw = tb.nrows()
    tb.close()
    lowest = min(int(s) for s in _expand_spws(spws))
    tk.applycal(**se.selfcal_applycal(vis, caltable, nspw, lowest))
    # SE stage 12: Tier-2 = Tier-1 + a second mask from the selfcal image
    second = str(sedir / naming.se_second_mask(img))
    _threshold_mask(model_root + ".image.tt0", second, nsigma=5.0)
    tier2 = str(sedir / naming.se_tier2_mask(img))
    _combine_masks(tier1, second, tier2)
    # the SE-CONT final state, to compare the restore against
    tb.open(vis)
    np.savez_compressed(out_state, FLAG=tb.getcol("FLAG"), WEIGHT=tb.getcol("WEIGHT"),
                        CORRECTED_DATA=tb.getcol("CORRECTED_DATA"), TIME=tb.getcol("TIME"),
                        ANTENNA1=tb.getcol("ANTENNA1"), ANTENNA2=tb.getcol("ANTENNA2"),
                        DATA_DESC_ID=tb.getcol("DATA_DESC_ID"))
    tb.close()
    members = [
        naming.flagversions(vis_name),
        Path(caltable).name,
        naming.se_model_root(img) + ".model.tt0",
        naming.se_model_root(img) + ".model.tt1",
        Path(tier1).name,
        Path(second).name,
        Path(tier2).name,
    ]
    tmp = out_tgz.with_name(out_tgz.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        for m in members:
            tar.add(str(sedir / m), arcname=m)
    tmp.replace(out_tgz)
    return {"selfcal_table": Path(caltable).name, "tier1_sources": n_cat, "refant": REFANT,
            "imaging_mode": mode.imaging_mode, "gridder": mode.gridder, "wprojplanes": mode.wprojplanes,
            "tgz_members": members, "split_vis": vis_name}


def _expand_spws(spws: str) -> list[str]:
    out = []
    for part in spws.split(","):
        if "~" in part:
            a, b = part.split("~")
            out += [str(i) for i in range(int(a), int(b) + 1)]
        else:
            out.append(part)
    return out


def cleanup(sedir: Path) -> None:
    shutil.rmtree(sedir, ignore_errors=True)
