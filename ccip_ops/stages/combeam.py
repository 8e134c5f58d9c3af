"""The common-beam / common-WCS ``.com`` set of hifv_exportvlassdata (spec §9.4, DESIGN §4).

For each plane the original IQUV CASA pbcor cutout (uncorrected; CAS-13827/CAS-13799) is
brought to one target beam, ``ia.commonbeam()`` of the kept planes enlarged by 1.00001, and
to one WCS, the nominal one, then split into IQU and V and written as
``<name>.com.fits``. Following DESIGN §4 (the seed workflow) rather than the current NRAO
code, the image is smoothed only when the convolution kernel's major axis exceeds
0.2 pixel diagonals, and regridded only when the position correction moves CRVAL by more
than 0.1 pixel diagonals; the FITS HISTORY says what was done. The ``.com`` files carry no
ZD/TELMJD (no position correction of their own) and are not in the manifest. A plane that
cannot be brought to the target beam is skipped with a warning naming it.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from .. import casa_env, casaimage
from ..runtree import remove

log = logging.getLogger("ccip")
BEAM_ENLARGE = 1.00001
SMOOTH_TOL_PIXDIAG = 0.2
SHIFT_TOL_PIXDIAG = 0.1


def _q(v: float, unit: str = "arcsec") -> dict:
    return {"value": float(v), "unit": unit}


def common_beam(beams: list[dict]) -> dict:
    """``ia.commonbeam()`` over one scratch channel per plane; beams as {bmaj, bmin, pa} (arcsec, deg)."""
    if not beams:
        raise ValueError("no beam to make a common beam from")
    ct = casa_env.tools()
    ia = ct.image()
    cs = ct.coordsys()
    cs = cs.newcoordsys(direction=True, spectral=True)
    ia.fromshape("", shape=[128, 128, len(beams)], csys=cs.torecord(), overwrite=True)
    cs.done()
    try:
        for i, b in enumerate(beams):
            ia.setrestoringbeam(major=_q(b["bmaj"]), minor=_q(b["bmin"]), pa=_q(b.get("pa", 0.0), "deg"),
                                channel=i, polarization=-1)
        cb = ia.commonbeam()
    finally:
        ia.done()
    to = {"arcsec": 1.0, "deg": 3600.0, "rad": math.degrees(1) * 3600}
    major = cb["major"]["value"] * to[cb["major"]["unit"]]
    minor = cb["minor"]["value"] * to[cb["minor"]["unit"]]
    pa = cb["pa"]["value"] * (1.0 if cb["pa"]["unit"] == "deg" else math.degrees(1))
    return {"bmaj": major * BEAM_ENLARGE, "bmin": minor * BEAM_ENLARGE, "pa": pa}


def kernel(beam: dict, target: dict) -> dict | None:
    """The Gaussian that takes ``beam`` to ``target`` (arcsec, deg); None if it cannot be reached."""
    ia = casa_env.tools().image()
    try:
        k = ia.beamforconvolvedsize(
            source=[f"{beam['bmaj']}arcsec", f"{beam['bmin']}arcsec", f"{beam.get('pa', 0.0)}deg"],
            convolved=[f"{target['bmaj']}arcsec", f"{target['bmin']}arcsec", f"{target['pa']}deg"])
    except Exception:  # noqa: BLE001 - casatools raises a bare RuntimeError when unreachable
        return None
    finally:
        ia.done()
    conv = {"arcsec": 1.0, "deg": 3600.0, "rad": math.degrees(1) * 3600}
    return {"bmaj": k["major"]["value"] * conv[k["major"]["unit"]],
            "bmin": k["minor"]["value"] * conv[k["minor"]["unit"]]}


def make_com(iquv: Path, corrected_crval_deg: tuple[float, float], target: dict, outdir: Path,
             iqu_name: str, v_name: str, shift_tol_pixdiag: float = SHIFT_TOL_PIXDIAG) -> tuple[list[Path], list[str]]:
    """One plane's ``.com`` pair; returns (the two CASA images written, HISTORY lines)."""
    ct = casa_env.tools()
    with casaimage.opened(iquv) as ia:
        cs = ia.coordsys()
        shape = ia.shape()
    inc = cs.increment(format="n", type="direction")["numeric"]
    pixdiag = math.degrees(math.hypot(inc[0], inc[1])) * 3600
    beam = casaimage.beam(iquv).to_json()
    history = [f"Common beam target {target['bmaj']:.4f} x {target['bmin']:.4f} arcsec, PA {target['pa']:.2f}"]
    work = outdir / (iquv.name + ".com.tmp")
    remove(work)
    k = kernel(beam, target)
    same = (abs(beam["bmaj"] - target["bmaj"]) < SMOOTH_TOL_PIXDIAG * pixdiag
            and abs(beam["bmin"] - target["bmin"]) < SMOOTH_TOL_PIXDIAG * pixdiag
            and abs(beam["pa"] - target["pa"]) < 1e-3)
    if k is None and not same:
        cs.done()
        raise ValueError(f"{iquv.name}: beam {beam['bmaj']:.3f}x{beam['bmin']:.3f} arcsec cannot be convolved "
                         f"to the common beam {target['bmaj']:.3f}x{target['bmin']:.3f} arcsec")
    with casaimage.opened(iquv) as ia:
        if same or k["bmaj"] < SMOOTH_TOL_PIXDIAG * pixdiag:
            img = ia.subimage(outfile=str(work), overwrite=True)
            history.append(f"Not smoothed: kernel < {SMOOTH_TOL_PIXDIAG} pixel diagonal ({pixdiag:.3f} arcsec)")
        else:
            img = ia.convolve2d(outfile=str(work), axes=[0, 1], type="gauss", major=_q(target["bmaj"]),
                                minor=_q(target["bmin"]), pa=_q(target["pa"], "deg"), targetres=True, scale=-1,
                                overwrite=True)
            history.append(f"Smoothed to the common beam, kernel {k['bmaj']:.3f} x {k['bmin']:.3f} arcsec")
    ref = cs.referencevalue(format="n", type="direction")["numeric"]
    ra0, dec0 = math.degrees(ref[0]) % 360, math.degrees(ref[1])
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    sep = SkyCoord(ra0 * u.deg, dec0 * u.deg).separation(
        SkyCoord(corrected_crval_deg[0] * u.deg, corrected_crval_deg[1] * u.deg)).arcsec
    if sep > shift_tol_pixdiag * pixdiag:
        moved = img.coordsys()
        moved.setreferencevalue(type="direction", value=[math.radians(corrected_crval_deg[0]),
                                                         math.radians(corrected_crval_deg[1])])
        img.setcoordsys(moved.torecord())
        moved.done()
        regridded = outdir / (iquv.name + ".com.regrid.tmp")
        out = img.regrid(outfile=str(regridded), csys=cs.torecord(), shape=shape, axes=[0, 1], overwrite=True)
        out.done()
        img.done()
        remove(work)
        regridded.rename(work)
        img = ct.image()
        img.open(str(work))
        history.append(f"Position correction {sep:.4f} arcsec applied by regridding")
    else:
        history.append(f"Not regridded: shift {sep:.4f} arcsec < {shift_tol_pixdiag} pixel diagonal")
    img.done()
    cs.done()
    written = []
    for pol, name in (("IQU", iqu_name), ("V", v_name)):
        dst = outdir / name
        remove(dst)
        with casaimage.opened(work) as ia:
            rg = ct.regionmanager()
            sub = ia.subimage(outfile=str(dst), region=rg.frombcs(csys=ia.coordsys().torecord(), shape=ia.shape(),
                                                                    stokes=pol, stokescontrol="a"), overwrite=True)
            rg.done()
        rb = sub.restoringbeam(channel=0, polarization=0)  # one beam for the whole image (§9.4 step 6)
        sub.setrestoringbeam(remove=True)
        sub.setrestoringbeam(beam=rb)
        sub.done()
        written.append(dst)
    remove(work)
    return written, history
