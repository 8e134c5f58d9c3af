"""hif_makermsimages (stage 9, spec §6): a local-rms image of each pbcor image with ``imdev``.

``<T>.iter3.image.pbcor.tt0.rms`` from ``imdev(grid=[10,10], anchor='ref', xlength=ylength=<box>,
interp='cubic', stattype='xmadm', statalg='chauvenet', zscore=-1, maxiter=-1)``: a 4-Stokes image.

The box (:func:`ccip_ops.heuristics.stats.rms_box_arcsec`): NRAO's 60″ whenever the cell is
VLASS-like (≤ 1″); for the coarse test fields (departure, stated in the issue notes) 60″ × bmaj/3.75″,
so that it still spans 16 beams.

Where: the rms image is only used inside the cutout (stage 10), so imdev runs on the cutout plus a
margin of one box (:func:`~ccip_ops.heuristics.stats.rms_region`) instead of the whole image: a VLASS
plane is 12500² pixels and its cutout 6200². With the grid anchored at the reference pixel, its values
inside the cutout equal a whole-image imdev's (tests/casa/test_fanin_scale.py); where the cutout is
the whole image (the test fields) imdev runs on the whole image as before. The box, the region and
why are written into the rms image's history. Entry point: :func:`rms_image`.
"""
from __future__ import annotations

from .. import casaimage
from ..heuristics.stats import rms_box_arcsec, rms_margin_px, rms_region
from ..model import ImagingResult
from ..runtree import RunTree, remove
from ._casa import Casa
from .cutouts import cutout_geometry

IMDEV = dict(region="", box="", chans="", stokes="", mask="", overwrite=True, stretch=False, grid=[10, 10],
             anchor="ref", interp="cubic", stattype="xmadm", statalg="chauvenet", zscore=-1, maxiter=-1)


def rms_image(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"rmsimages.{result.label}")
    src = tree.abs(result.images["image_pbcor"])
    out = tree.working / result.target.names.rms
    remove(out)
    (nx, ny), cell, cut = cutout_geometry(src)
    box_as = rms_box_arcsec(cell, result.beam.bmaj if result.beam else 0.0)
    box = f"{box_as:.2f}arcsec"
    region = rms_region(cut, nx, ny, rms_margin_px(box_as, cell, IMDEV["grid"][0]))
    boxstr = "" if region is None else ",".join(map(str, region))
    casa("imdev", imagename=str(src), outfile=str(out), xlength=box, ylength=box, **{**IMDEV, "box": boxstr})
    rule = "NRAO's 60 arcsec (VLASS-like cell <= 1 arcsec)" if cell <= 1.0 else \
        f"60 arcsec x bmaj/3.75 arcsec (coarse {cell:.3g} arcsec cell: the box spans 16 beams)"
    where = "the whole image" if region is None else \
        f"pixels {region[0]},{region[1]} to {region[2]},{region[3]} of {src.name} (the cutout and one box of margin)"
    casaimage.add_history(out, "ccip.rmsimages", [f"imdev box {box} = {box_as / cell:.1f} pixels: {rule}",
                                                  f"imdev over {where}"])
    return result.adding({"rms": tree.rel(out)}, rms_box=box, rms_region=list(region) if region else None)
