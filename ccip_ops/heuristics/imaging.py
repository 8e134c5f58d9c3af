"""VLASS-SE-CUBE tclean parameters (spec §4.2) and the iteration sequence (§4.3)."""
from __future__ import annotations

import re

from ..model import ImagingTarget

NSIGMA = {0: 2.0, 1: 3.0, 2: 3.0, 3: 4.5}
SCALES = [0, 5, 12]
PBMASK = 0.4
CYCLENITER = 500
CYCLENITER_FINAL = 100
MOVE_RULES = ("cleanmask: keep", "mask: delete", "residual/image: copy", "other: move")


def tclean_args(t: ImagingTarget, vis: str, imagename: str, iteration: int, mask: str | None) -> dict:
    """tclean arguments of one iteration (0-3) of a target, overrides from the CCIP list applied."""
    ov = dict(t.tclean_overrides)
    final_cyc = ov.pop("cycleniter_final_image_nomask", None)
    args = dict(
        vis=vis, field=",".join(str(f) for f in t.field_ids), spw=t.group, datacolumn="corrected",
        imagename=imagename, imsize=list(t.imsize), cell=t.cell, phasecenter=t.phasecenter,
        stokes="IQUV", specmode="mfs", reffreq=t.reffreq, outframe="LSRK", gridder="mosaic",
        wprojplanes=1, cfcache="", mosweight=False, conjbeams=False, usepointing=False,
        pointingoffsetsigdev=[300, 30], rotatepastep=5.0, pblimit=0.1, deconvolver="mtmfs", nterms=1,
        restoringbeam="", weighting="briggs", robust=1.0, npixels=0, perchanweightdensity=False,
        uvtaper=[], uvrange="<12km", niter=20000, cyclefactor=3.0, cycleniter=CYCLENITER,
        threshold="0Jy", nsigma=NSIGMA[iteration], fastnoise=True, psfcutoff=0.5, pbcor=False,
        restoration=True, savemodel="none", parallel=False, fullsummary=True,
    )
    if iteration == 0:
        args.update(niter=0, usemask="user", mask="")
    else:
        args.update(scales=SCALES, smallscalebias=0.4, nmajor=220, restart=True, calcpsf=False, calcres=False)
        if mask == "pb":
            args.update(usemask="pb", pbmask=PBMASK, mask="")
        else:
            args.update(usemask="user", mask=mask)
    user_cyc = ov.pop("cycleniter", None)
    for k, v in ov.items():
        if k in ("nsigma",) and iteration == 0:
            continue  # the user's nsigma is for the cleaning iterations
        args[k] = v
    if iteration == 3 and mask == "pb":
        args["cycleniter"] = final_cyc if final_cyc is not None else CYCLENITER_FINAL
    elif user_cyc is not None:
        args["cycleniter"] = user_cyc
    if "pbmask" in ov and mask != "pb":
        args.pop("pbmask", None)
    return args


def vlass_keywords(t: ImagingTarget, bw_actual_hz: float, stokes: str = "IQUV") -> dict:
    """The VLASS miscinfo keywords of §4.3 (VLASSRJ is set after plane rejection)."""
    name = t.imagename
    tn = re.search(r"\.(T\d+t\d+)\.", name)
    ep = re.search(r"VLASS(\d+\.\d+)", name)
    vr = re.search(r"\.v(\d+)(\.|$)", name)
    return {
        "VLASSBWN": 128e6 * len(t.spws), "VLASSBW": bw_actual_hz, "VLASSSPW": spw_ranges(t.spws),
        "VLASSPC": t.phasecenter, "VLASSPL": stokes, "VLASSPT": t.imaging_mode,
        "VLASSTN": tn.group(1) if tn else "", "VLASSEP": ep.group(1) if ep else "",
        "VLASSVR": vr.group(1) if vr else "", "VLASSWP": 0,
    }


def spw_ranges(spws: list[int]) -> str:
    """[2,3,4,7] -> '2~4,7'."""
    s = sorted(spws)
    out, start, prev = [], s[0], s[0]
    for x in s[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}~{prev}" if prev != start else f"{start}")
        if x is not None:
            start = prev = x
    return ",".join(out)


def image_type(filename: str, append_tt: bool = True) -> str:
    """VLASSITY from the file name, as NRAO's ``get_vlass_image_type``
    (``pipeline/infrastructure/utils/imaging.py``): the base type from the first substring found
    (``.alpha.error``, ``.alpha``, ``.rms``, ``image.pbcor.``, ``.weight.``, ``.sumwt.``, ``.psf.``;
    else UNKNOWN), then ``_TT0``/``_TT1`` when the name holds ``tt0``/``tt1``.

    So ``...image.pbcor.tt0.subim.fits`` is INTENSITY_PBCOR_TT0, ``...pbcor.tt0.rms.subim.fits``
    RMS_TT0, a ``.com.fits`` of the pbcor image INTENSITY_PBCOR_TT0; the residual, pb, model and
    the non-pbcor image are UNKNOWN, as NRAO writes them."""
    import os

    name = os.path.basename(str(filename)).lower()
    base = ("ALPHAERR" if ".alpha.error" in name else "ALPHA" if ".alpha" in name else
            "RMS" if ".rms" in name else "INTENSITY_PBCOR" if "image.pbcor." in name else
            "WEIGHT" if ".weight." in name else "SUMWT" if ".sumwt." in name else
            "PSF" if ".psf." in name else "UNKNOWN")
    if base == "UNKNOWN" or not append_tt:
        return base
    return base + ("_TT0" if "tt0" in name else "_TT1" if "tt1" in name else "")
