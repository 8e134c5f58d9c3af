"""hif_makecutoutimages (stage 10, spec §7): 1 deg + 2 arcmin cutouts and per-Stokes statistics.

Cut per group (B = ``T.iter3``): image, residual, image.pbcor, image.pbcor.rms, psf,
image.residual.pbcor, pb -> ``<input>.subim``. Side: the whole image when it is at most
1 deg + 2 arcmin wide, else ``round_half_up(3600 (1 + 2/60) / cell)`` pixels, centred at
(nx//2, ny//2). ``VLASSPK`` (Stokes-I max of the pbcor cutout) and ``VLASSRMS`` (Stokes-I
median of the rms cutout), ``VLASSPL``, ``VLASSITY`` go into the miscinfo of the pbcor and rms
cutouts. Robust statistics per Stokes are returned for the weblog and the analysis; they are
CASA's own (``ia.statistics``, one pass that holds no whole image), over the unmasked finite pixels.
The rms image covers the cutout and a margin (stage 9): its cutout is the same sky box, shifted by
where the rms image starts. Entry point: :func:`cut_group`.
"""
from __future__ import annotations

import decimal
import math

from .. import casaimage, naming
from ..heuristics.imaging import image_type
from ..heuristics.stats import from_casa
from ..model import ImagingResult
from ..runtree import RunTree, remove
from ._casa import Casa

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


def cutout_geometry(path) -> tuple[tuple[int, int], float, tuple[int, int, int, int] | None]:
    """((nx, ny), cell in arcsec, cutout box or None) of an image, from its header only."""
    with casaimage.opened(path) as ia:
        shape = ia.shape()
        cs = ia.coordsys()
    try:
        cell = float(abs(cs.increment()["numeric"][0]) * 180 / math.pi * 3600)
        nx, ny = int(shape[0]), int(shape[1])  # plain ints: the box travels in the results' JSON
        return (nx, ny), cell, cutout_box(nx, ny, cell, float(cs.referencepixel()["numeric"][0]))
    finally:
        cs.done()


def stokes_stats(path: str) -> dict:
    """Robust statistics per Stokes plane of an image, by CASA over its unmasked finite pixels."""
    p = str(path).replace('"', '\\"')
    with casaimage.opened(path) as ia:
        cs = ia.coordsys()
        labels = cs.stokes()
        cs.done()
        rec = ia.statistics(axes=[0, 1, 3], robust=True, mask=f'!isnan("{p}")', list=False, verbose=False)
    return {s: from_casa(rec, k) for k, s in enumerate(labels)}


def _shifted(box, origin) -> str:
    if box is None:
        return ""
    ox, oy = (origin or (0, 0))[:2]
    return ",".join(map(str, (box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy)))


def cut_group(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"cutouts.{result.label}")
    _, _, box = cutout_geometry(tree.abs(result.images["image"]))
    stats, cut = {}, {}
    for kind in naming.CUT_KINDS:
        src = tree.abs(result.images[kind])
        out = src.with_name(naming.subim(src.name))
        remove(out)
        boxstr = _shifted(box, result.qa.get("rms_region") if kind == "rms" else None)
        casa("imsubimage", imagename=str(src), outfile=str(out), box=boxstr, dropdeg=False, overwrite=True)
        cut[f"{kind}_subim"] = tree.rel(out)
        if kind in ("image", "residual", "image_pbcor", "rms", "pb"):
            stats[kind] = stokes_stats(str(out))
    pk = stats["image_pbcor"]["I"]["max"]
    rms = stats["rms"]["I"]["median"]
    for kind in ("image_pbcor", "rms"):
        p = str(tree.abs(cut[f"{kind}_subim"]))
        casaimage.update_miscinfo(p, VLASSPL="IQUV", VLASSITY=image_type(p), VLASSPK=pk, VLASSRMS=rms,
                                  virtspw=result.group)
    return result.adding(cut, cutout_box=box, stats=stats, VLASSPK=pk, VLASSRMS=rms)
