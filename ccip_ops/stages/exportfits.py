"""The FITS header work of hifv_exportvlassdata (stage 12, spec §9.2-§9.3).

- the observation's start, end and mid-time (DATE-OBS, DATE-END, TELMJD) and the observatory
  come from :func:`ccip_ops.msinfo.observation_span`: every row of every observation of the MS,
  the observatory of its telescope name (not one OBSERVATION row, not a fixed "EVLA");
- :func:`correct_position`: the frequency-dependent VLASS position correction of one FITS file
  (:mod:`ccip_ops.heuristics.poscorr`; ``ZD``, ``TELMJD``, HISTORY; never applied twice) at the
  mid-time, for the observatory's longitude and latitude;
- :func:`fix_header`: DATE-OBS/DATE-END, RADESYS ICRS, OBJECT and the VLASS keywords, each
  ``VLASS*`` keyword with NRAO's comment (:data:`VLASS_COMMENTS`; a missing one is warned about);
- :func:`add_checksums`: FITS CHECKSUM/DATASUM on every HDU, the last write to a product, so that
  ``fits.open(..., checksum=True)`` and ``verify('exception')`` pass on what is delivered.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from ..heuristics import poscorr

log = logging.getLogger("ccip")


def _iso(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="utc").isot


def correct_position(fits_path: Path, mjd_mid: float, site: tuple[float, float]) -> bool:
    """Apply the §9.3 correction to one FITS file for an observatory at ``site`` = (longitude,
    latitude) in degrees; False if it was already applied."""
    from astropy.io import fits

    lon, lat = site
    with fits.open(fits_path, mode="update") as hdul:
        h = hdul[0].header
        if any("Position correction " in str(x) for x in h.get("HISTORY", [])):
            log.warning("%s: position correction already applied, not applied again", fits_path.name)
            return False
        ra, dec, freq = float(h["CRVAL1"]), float(h["CRVAL2"]), float(h["CRVAL3"])
        zd, chi = poscorr.calc_zd_pa(ra, dec, lon, lat, mjd_mid)
        ra2, dec2, x, y = poscorr.shift(ra, dec, freq, zd, chi)
        h["CRVAL1"], h["CRVAL2"] = ra2, dec2
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["ZD"] = (math.degrees(zd), "Zenith distance at mid-observation [deg]")
        h["TELMJD"] = (mjd_mid, "MJD of mid-observation (position correction)")
        h.add_history(f"Uncorrected CRVAL1 = {ra:.12f} deg")
        h.add_history(f"Uncorrected CRVAL2 = {dec:.12f} deg")
        h.add_history(f"ZD = zenith distance at TELMJD, {math.degrees(zd):.6f} deg")
        h.add_history(f"TELMJD = mid-observation time {mjd_mid:.8f}")
        h.add_history(f"Position correction ({x:.3E}/cos(CRVAL2), {y:.3E}) arcsec applied")
    return True


# NRAO's comments (hifv_exportvlassdata, PIPE-2461/3040; spec §9.2, and NRAO's standalone
# update_vlass_header.py for the tile/phasecenter/epoch/version/spw wording). CASA image headers
# carry no keyword comments, so they are added to the FITS after export.
VLASS_COMMENTS = {
    "VLASSITY": "VLASS image type", "VLASSPT": "VLASS product type", "VLASSTN": "VLASS tile name",
    "VLASSPC": "VLASS phasecenter", "VLASSEP": "VLASS epoch", "VLASSVR": "VLASS version number",
    "VLASSPL": "VLASS Stokes/polarization parameter",
    "VLASSRJ": "Rejected plane relevant for VLASS CC processing",
    "VLASSSPW": "Spectral windows used for image", "VLASSBWN": "Nominal bandwidth",
    "VLASSBW": "Actual bandwidth after flagging",
    "VLASSRMS": "Median rms calculated from RMS{tt} (Stokes I) image",
    "VLASSPK": "Peak flux density of INTENSITY_PBCOR{tt} (Stokes I) image",
    "VLASSWP": "Number of w-projection planes",
}


def vlass_comment(key: str, filename: str) -> str:
    """The comment of one VLASS keyword for a file (VLASSRMS/VLASSPK name the TT0/TT1 image)."""
    low = filename.lower()
    tt = "_TT0" if "tt0" in low else "_TT1" if "tt1" in low else ""
    return VLASS_COMMENTS[key].format(tt=tt)


def comment_vlass_keywords(header, filename: str) -> list[str]:
    """Give every VLASS* keyword of ``header`` its comment; returns the keywords that are absent."""
    missing = []
    for key in VLASS_COMMENTS:
        if key in header:
            header.comments[key] = vlass_comment(key, filename)
        else:
            missing.append(key)
    for key in missing:
        log.warning("%s: VLASS keyword %s is absent", filename, key)
    return missing


def add_checksums(fits_path: Path) -> None:
    """CHECKSUM and DATASUM (the FITS checksum convention) on every HDU of the file."""
    from astropy.io import fits

    with fits.open(fits_path, mode="update", checksum=False) as hdul:
        for hdu in hdul:
            hdu.add_checksum()
        hdul.flush(output_verify="exception")


def fix_header(fits_path: Path, t0: float, t1: float, keywords: dict, pipeline: str = "") -> None:
    """The header fixes (module docstring); ``pipeline``, the versions that made the plane, goes into
    a HISTORY card (issue 17: every product says which pipeline made it)."""
    import warnings

    from astropy.io import fits

    with warnings.catch_warnings(), fits.open(fits_path, mode="update") as hdul:
        # NRAO's longer comments (VLASSRMS, VLASSPK) do not fit an 80-character card with a
        # number: FITS cuts them, as in NRAO's own products
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        h = hdul[0].header
        h["DATE-OBS"] = (_iso(t0), "First scan started")
        h["DATE-END"] = (_iso(t1), "Last scan finished")
        if str(h.get("RADESYS", "")).strip() == "FK5":
            h["RADESYS"] = "ICRS"
        parts = fits_path.name.split(".")
        if len(parts) > 4:
            h["OBJECT"] = parts[4]
        for k, v in keywords.items():
            h[k] = v
        comment_vlass_keywords(h, fits_path.name)
        if pipeline:
            h.add_history(f"ccip pipeline {pipeline}")
