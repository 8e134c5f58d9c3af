"""hif_makermsimages (stage 9, spec §6): a local-rms image of each pbcor image with ``imdev``.

``<T>.iter3.image.pbcor.tt0.rms`` from ``imdev(grid=[10,10], anchor='ref',
xlength='60arcsec', ylength='60arcsec', interp='cubic', stattype='xmadm',
statalg='chauvenet', zscore=-1, maxiter=-1)``: a 4-Stokes image.
"""
from __future__ import annotations

from ..model import ImagingResult
from ..runtree import RunTree, remove
from ._casa import Casa

IMDEV = dict(region="", box="", chans="", stokes="", mask="", overwrite=True, stretch=False, grid=[10, 10],
             anchor="ref", xlength="60arcsec", ylength="60arcsec", interp="cubic", stattype="xmadm",
             statalg="chauvenet", zscore=-1, maxiter=-1)


def run(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"rmsimages.{result.target.label}")
    src = tree.abs(result.images["image_pbcor"])
    out = f"{src}.rms"
    remove(out)
    casa("imdev", imagename=str(src), outfile=out, **IMDEV)
    result.images["rms"] = tree.rel(out)
    return result
