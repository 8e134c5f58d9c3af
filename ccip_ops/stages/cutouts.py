"""hif_makecutoutimages (stage 10, spec §7): 1 deg + 2 arcmin cutouts and per-Stokes statistics.

Cut per group (B = ``T.iter3``): image, residual, image.pbcor, image.pbcor.rms, psf,
image.residual.pbcor, pb -> ``<input>.subim``. Side: the whole image when it is at most
1 deg + 2 arcmin wide, else ``round_half_up(3600 (1 + 2/60) / cell)`` pixels, centred at
(nx//2, ny//2). ``VLASSPK`` (Stokes-I max of the pbcor cutout) and ``VLASSRMS`` (Stokes-I
median of the rms cutout), ``VLASSPL``, ``VLASSITY`` go into the miscinfo of the pbcor and rms
cutouts. Robust statistics per Stokes are returned for the weblog and the analysis.
"""
from __future__ import annotations

import decimal
import math

import numpy as np

from .. import casa_env
from ..heuristics.imaging import image_type
from ..model import ImagingResult
from ..runtree import RunTree, remove
from ._casa import Casa

CUT_KINDS = ("image", "residual", "image_pbcor", "rms", "psf", "residual_pbcor", "pb")
ONE_DEG_PLUS_2ARCMIN = 1.0 + 2.0 / 60.0


def cutout_box(nx: int, ny: int, cell_arcsec: float, refpix_x: float) -> tuple[int, int, int, int] | None:
    """(blcx, blcy, trcx, trcy) of the cutout, or None for the whole image."""
    imsize_deg = 2 * abs(refpix_x * cell_arcsec / 3600.0)
    if imsize_deg <= ONE_DEG_PLUS_2ARCMIN:
        return None
    n = int(decimal.Decimal(3600 * ONE_DEG_PLUS_2ARCMIN / cell_arcsec).quantize(0, decimal.ROUND_HALF_UP))
    blcx, blcy = max(nx // 2 - n // 2, 0), max(ny // 2 - n // 2, 0)
    trcx, trcy = min(nx // 2 + n // 2 - 1, nx - 1), min(ny // 2 + n // 2 - 1, ny - 1)
    return blcx, blcy, trcx, trcy


def _robust(a: np.ndarray) -> dict:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"peak": float("nan"), "madrms": float("nan"), "median": float("nan"), "max": float("nan")}
    med = float(np.median(a))
    mad = 1.4826 * float(np.median(np.abs(a - med)))
    peak = float(a[np.argmax(np.abs(a))])
    return {"peak": peak, "madrms": mad, "median": med, "max": float(a.max()), "min": float(a.min()),
            "peak_over_madrms": abs(peak) / mad if mad > 0 else float("nan")}


def stokes_stats(path: str) -> dict:
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(path)
    a = ia.getchunk()
    m = ia.getchunk(getmask=True)
    cs = ia.coordsys()
    ia.close()
    labels = cs.stokes()
    cs.done()
    return {s: _robust(np.where(m[:, :, k, :], a[:, :, k, :], np.nan)) for k, s in enumerate(labels)}


def run(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"cutouts.{result.target.label}")
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(tree.abs(result.images["image"])))
    shape = ia.shape()
    cs = ia.coordsys()
    ia.close()
    cell = abs(cs.increment()["numeric"][0]) * 180 / math.pi * 3600
    box = cutout_box(shape[0], shape[1], cell, cs.referencepixel()["numeric"][0])
    cs.done()
    boxstr = "" if box is None else ",".join(map(str, box))
    stats = {}
    for kind in CUT_KINDS:
        src = str(tree.abs(result.images[kind]))
        out = src + ".subim"
        remove(out)
        casa("imsubimage", imagename=src, outfile=out, box=boxstr, dropdeg=False, overwrite=True)
        result.images[f"{kind}_subim"] = tree.rel(out)
        if kind in ("image", "residual", "image_pbcor", "rms", "pb"):
            stats[kind] = stokes_stats(out)
    pk = stats["image_pbcor"]["I"]["max"]
    rms = stats["rms"]["I"]["median"]
    for kind in ("image_pbcor", "rms"):
        p = str(tree.abs(result.images[f"{kind}_subim"]))
        ia.open(p)
        mi = ia.miscinfo()
        mi.update({"VLASSPL": "IQUV", "VLASSITY": image_type(p), "VLASSPK": pk, "VLASSRMS": rms,
                   "virtspw": result.target.group})
        ia.setmiscinfo(mi)
        ia.close()
    result.qa.update({"cutout_box": box, "stats": stats, "VLASSPK": pk, "VLASSRMS": rms})
    return result
