"""Reading and updating CASA images: one open/close, in one place.

Every stage that reads a CASA image's header (shape, coordinates, beam, miscinfo) or pixels, or
writes its miscinfo, does it through these helpers, so an image is always closed again, also
when the read fails.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

from . import casa_env
from .model import Beam


@contextlib.contextmanager
def opened(path: str | Path):
    """``casatools.image`` opened on ``path``; closed on exit."""
    ia = casa_env.tools().image()
    ia.open(str(path))
    try:
        yield ia
    finally:
        ia.done()


def miscinfo(path: str | Path) -> dict:
    with opened(path) as ia:
        return dict(ia.miscinfo())


def update_miscinfo(path: str | Path, **keywords) -> None:
    """Add or replace miscinfo keywords (the VLASS* keywords) of one image."""
    with opened(path) as ia:
        mi = ia.miscinfo()
        mi.update(keywords)
        ia.setmiscinfo(mi)


def beam(path: str | Path, channel: int = 0, polarization: int = 0) -> Beam:
    """The restoring beam of one plane."""
    with opened(path) as ia:
        rec = ia.restoringbeam(channel=channel, polarization=polarization)
    return Beam.from_casa(rec, casa_env.tools().quanta())


def shape(path: str | Path) -> list[int]:
    with opened(path) as ia:
        return [int(n) for n in ia.shape()]


def cell_arcsec(path: str | Path) -> float:
    """|increment| of the first direction axis, in arcsec."""
    with opened(path) as ia:
        cs = ia.coordsys()
        try:
            return abs(math.degrees(cs.increment(format="n", type="direction")["numeric"][0])) * 3600
        finally:
            cs.done()


def pixels(path: str | Path, blc=None, trc=None, getmask: bool = False):
    """The pixels (or the pixel mask) of an image, or of the box blc..trc (inclusive)."""
    with opened(path) as ia:
        kw = {}
        if blc is not None:
            kw["blc"] = list(blc)
        if trc is not None:
            kw["trc"] = list(trc)
        return ia.getchunk(getmask=getmask, **kw)


def add_history(path: str | Path, origin: str, lines: list[str]) -> None:
    """Append lines to an image's history (``ia.sethistory``)."""
    with opened(path) as ia:
        ia.sethistory(origin=origin, history=list(lines))


def history(path: str | Path) -> list[str]:
    with opened(path) as ia:
        return [str(x) for x in ia.history(list=False)]
