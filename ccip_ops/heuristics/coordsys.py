"""Do the SE model images and masks fit the restore's coordinate system? (issue 14 item 3)

Checked before restorepims' first tclean, so that a mismatch is an :class:`InputError` that names
the file and both coordinate systems (shape, reference pixel and value, increment, Stokes,
spectral reference), not CASA's bare "coordinate system mismatch" after the expensive steps.

What the restore computes is the SE stage-1 grid: ``imsize``, ``cell`` and ``phasecenter`` of
``SEIP_parameter.list``, SIN projection, reference pixel ``imsize // 2``, Stokes I, one channel at
the stage-1 ``reffreq``, with the bandwidth of the spws it predicts.

- A model whose grid differs **only in image size** (same cell, phase centre, projection and
  frame, reference pixel at its own centre) is what SE imaged with that size: the restore then
  uses the model's size, which reproduces SE's prediction exactly. Said in the weblog.
- Any other difference of a model (cell, phase centre, frame, projection, Stokes, reference
  frequency, bandwidth from another spw selection, tt0 and tt1 apart) is refused.
- A mask must lie on the model's sky grid (same cell, phase centre, projection, frame; Stokes
  I): makeimages copies a mask of the image's size as it is. Its size may differ (makeimages
  then regrids it onto each image); its spectral axis is not used (one mask serves every group).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .. import casaimage, casa_env
from ..exceptions import InputError

REL_TOL = 1e-7  # of an increment or a frequency: CASA writes them in double precision
ANGLE_TOL_RAD = 1e-9  # 0.2 mas: far below any VLASS pixel
# tclean's mfs spectral increment is the selected band's span (in LSRK, with its own margins: +1.2 %
# measured on the simulated 2-17 selection). One edge spw of VLASS's 16 changes it by >= 6 %; a
# missing spw inside the band does not change the span and cannot be seen from the image.
BANDWIDTH_REL_TOL = 0.03


@dataclass(frozen=True)
class Grid:
    """The numbers of a coordinate system that decide whether two images are on one grid."""

    shape: tuple[int, ...]
    frame: str
    projection: str
    refpix: tuple[float, float]
    refval_rad: tuple[float, float]
    incr_rad: tuple[float, float]
    stokes: tuple[str, ...]
    freq_ref_hz: float | None
    freq_incr_hz: float | None

    def describe(self) -> str:
        ra, dec = (math.degrees(v) for v in self.refval_rad)
        dx, dy = (math.degrees(v) * 3600 for v in self.incr_rad)
        incr = "any increment" if self.freq_incr_hz is None else f"increment {self.freq_incr_hz / 1e6:.3f} MHz"
        spec = ("no spectral axis" if self.freq_ref_hz is None else
                f"spectral reference {self.freq_ref_hz / 1e9:.6f} GHz, {incr}")
        return (f"shape {list(self.shape)}, {self.frame} {self.projection}, reference pixel "
                f"({self.refpix[0]:g}, {self.refpix[1]:g}), reference value ({ra:.7f}, {dec:.7f}) deg, "
                f"increment ({dx:.6g}, {dy:.6g}) arcsec, Stokes {list(self.stokes)}, {spec}")


def of_image(path: str | Path) -> Grid:
    with casaimage.opened(path) as ia:
        shape = tuple(int(n) for n in ia.shape())
        cs = ia.coordsys()
    try:
        types = list(cs.axiscoordinatetypes())
        units = list(cs.units())
        refpix = list(cs.referencepixel()["numeric"])
        refval = list(cs.referencevalue(format="n")["numeric"])
        incr = list(cs.increment(format="n")["numeric"])
        qa = casa_env.tools().quanta()

        def rad(i):
            return (qa.convert(qa.quantity(refval[i], units[i]), "rad")["value"],
                    qa.convert(qa.quantity(incr[i], units[i]), "rad")["value"])

        d = [i for i, t in enumerate(types) if t == "Direction"]
        f = [i for i, t in enumerate(types) if t == "Spectral"]
        (r0, i0), (r1, i1) = rad(d[0]), rad(d[1])
        freq_ref = freq_incr = None
        if f:
            freq_ref = qa.convert(qa.quantity(refval[f[0]], units[f[0]]), "Hz")["value"]
            freq_incr = qa.convert(qa.quantity(incr[f[0]], units[f[0]]), "Hz")["value"]
        return Grid(shape=shape, frame=cs.referencecode("direction")[0], projection=cs.projection()["type"],
                    refpix=(refpix[d[0]], refpix[d[1]]), refval_rad=(r0, r1), incr_rad=(i0, i1),
                    stokes=tuple(cs.stokes()) if "Stokes" in types else (), freq_ref_hz=freq_ref,
                    freq_incr_hz=freq_incr)
    finally:
        cs.done()


def restore_grid(vis: str | Path, imsize: list[int], cell: str, phasecenter: str, spws: list[int],
                 reffreq: str) -> Grid:
    """The grid of the SE stage-1 tclean the restore runs (mfs, Stokes I, one channel)."""
    from ..casatables import msmetadata
    from .fields import parse_phasecenter

    qa = casa_env.tools().quanta()
    c = qa.convert(qa.quantity(cell), "rad")["value"]
    lo, hi = [], []
    with msmetadata(vis) as md:
        for s in spws:
            f, w = md.chanfreqs(s), md.chanwidths(s)
            lo.append(float(min(f - abs(w) / 2)))
            hi.append(float(max(f + abs(w) / 2)))
    nx, ny = int(imsize[0]), int(imsize[-1])
    return Grid(shape=(nx, ny, 1, 1), frame=phasecenter.split()[0], projection="SIN", refpix=(nx // 2, ny // 2),
                refval_rad=parse_phasecenter(phasecenter), incr_rad=(-c, c), stokes=("I",),
                freq_ref_hz=qa.convert(qa.quantity(reffreq), "Hz")["value"], freq_incr_hz=max(hi) - min(lo))


def _close(a: float, b: float, rel: float = REL_TOL) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _same_sky(a: Grid, b: Grid) -> list[str]:
    """What keeps a and b off one sky grid (their sizes apart)."""
    out = []
    if (a.frame, a.projection) != (b.frame, b.projection):
        out.append("frame/projection")
    if not all(_close(x, y) for x, y in zip(a.incr_rad, b.incr_rad)):
        out.append("increment (cell)")
    # equal reference values at reference pixels a whole number of pixels apart: the grids then
    # coincide up to a whole-pixel shift (tclean puts the phase centre at pixel imsize // 2)
    if not all(abs(math.remainder(x - y, 2 * math.pi)) <= ANGLE_TOL_RAD for x, y in zip(a.refval_rad, b.refval_rad)):
        out.append("reference value (phase centre)")
    for k in range(2):
        if abs((a.refpix[k] - b.refpix[k]) - round(a.refpix[k] - b.refpix[k])) > 1e-6:
            out.append("reference pixel (not on one pixel grid)")
            break
    return out


def _differences(a: Grid, b: Grid) -> list[str]:
    """What keeps image ``a`` off grid ``b``, their sizes apart."""
    why = _same_sky(a, b)
    if a.stokes != b.stokes:
        why.append("Stokes")
    if a.shape[2:] != b.shape[2:]:
        why.append("number of Stokes or channels")
    if not _spectral_same(a, b):
        why.append("spectral reference/increment (reffreq or spw selection)")
    return why


def _spectral_same(a: Grid, b: Grid) -> bool:
    if a.freq_ref_hz is None or b.freq_ref_hz is None:
        return a.freq_ref_hz is b.freq_ref_hz
    # an expected increment of None: not checked (aw-projection, see restore_resources.check_grids)
    return (_close(a.freq_ref_hz, b.freq_ref_hz)
            and (b.freq_incr_hz is None or _close(abs(a.freq_incr_hz), abs(b.freq_incr_hz), BANDWIDTH_REL_TOL)))


def _refuse(what: str, path: Path, got: Grid, expected: Grid, why: list[str]) -> InputError:
    return InputError(f"{what} {path} does not match the coordinate system the restore computes "
                      f"({', '.join(why)}):\n  {path.name}: {got.describe()}\n  restore: {expected.describe()}\n"
                      "  (from SEIP_parameter.list imsize/cell/phasecenter/spw and the SE stage-1 reffreq)")


def check(models: list[Path], masks: list[Path], expected: Grid) -> tuple[list[int], list[str]]:
    """The image size [nx, ny] to restore with and the notes for the weblog; raises InputError."""
    first, g0 = models[0], of_image(models[0])
    why = _differences(g0, expected)
    centred = g0.refpix == (g0.shape[0] // 2, g0.shape[1] // 2)
    if not why and g0.shape[:2] != expected.shape[:2] and not centred:
        why.append("reference pixel not at the image centre")
    if not why and g0.shape[:2] == expected.shape[:2] and g0.refpix != expected.refpix:
        why.append("reference pixel")
    if why:
        raise _refuse("SE model image", first, g0, expected, why)
    use = replace(expected, shape=g0.shape, refpix=g0.refpix)
    for p in models[1:]:
        g = of_image(p)
        if _differences(g, g0) or g.shape != g0.shape or g.refpix != g0.refpix:
            raise InputError(f"SE model images {first.name} and {p.name} are on different coordinate systems:\n"
                             f"  {first.name}: {g0.describe()}\n  {p.name}: {g.describe()}")
    notes = []
    if g0.shape[:2] != expected.shape[:2]:
        notes.append(f"SE model {first.name} is {g0.shape[0]}x{g0.shape[1]} px, SEIP_parameter.list imsize "
                     f"{list(expected.shape[:2])}: restored at the model's size (the grid SE predicted from; "
                     "same cell and phase centre)")
    for m in masks:
        g = of_image(m)
        why = _same_sky(g, use)
        if g.stokes and g.stokes != ("I",):
            why.append("Stokes")
        if why:
            raise _refuse("SE mask", m, g, use, why)
        # its size may differ: makeimages regrids a mask onto each image whose size differs (and says so)
    return [int(use.shape[0]), int(use.shape[1])], notes
