"""Frequency-dependent VLASS position correction (spec §9.3, NRAO do_wide_field_pos_cor).

Δ = 0.25″ · tan(ZD) · (3 GHz/ν)², applied as a move of −Δ along the parallactic angle χ
(astropy ``offset_by`` with position angle χ + 180°), one shift per FITS file.
"""
from __future__ import annotations

import math

from .. import casa_env

AMPLITUDE_ARCSEC = 0.25  # at 3 GHz (VLASS Memo 14, as cited by the NRAO code)


def lst_rad(mjd_utc: float, lon_deg: float) -> float:
    ct = casa_env.tools()
    me, qa = ct.measures(), ct.quanta()
    t = me.epoch("UTC", qa.quantity(mjd_utc, "d"))
    gmst = me.measure(t, "GMST1")
    gmst_h = (gmst["m0"]["value"] % 1.0) * 24.0
    lst_h = (gmst_h % 24) + lon_deg / 15.0
    if lst_h < 0:
        lst_h += 24
    return math.radians(lst_h * 15.0)


def calc_zd_pa(ra_deg: float, dec_deg: float, lon_deg: float, lat_deg: float, mjd_utc: float) -> tuple[float, float]:
    """Zenith distance and parallactic angle (rad), with the NRAO quadrant fix."""
    phi, dec = math.radians(lat_deg), math.radians(dec_deg)
    ha = (lst_rad(mjd_utc, lon_deg) - math.radians(ra_deg)) % (2 * math.pi)
    zd = math.acos(math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(ha))
    chi = math.atan(math.sin(ha) / (math.cos(dec) * math.tan(phi) - math.sin(dec) * math.cos(ha)))
    if ha > math.pi:
        ha -= 2 * math.pi
    if ha < 0 and chi > 0:
        chi -= math.pi
    elif ha > 0 and chi < 0:
        chi += math.pi
    return zd, chi


def shift(ra_deg: float, dec_deg: float, freq_hz: float, zd: float, chi: float) -> tuple[float, float, float, float]:
    """Corrected (ra, dec) in deg and the (X, Y) offsets in arcsec (X = −Δ sin χ, Y = −Δ cos χ)."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    delta = AMPLITUDE_ARCSEC * math.tan(zd) * (3e9 / freq_hz) ** 2
    c = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    n = c.directional_offset_by((chi * u.rad + 180 * u.deg), delta * u.arcsec)
    return n.ra.deg, n.dec.deg, -delta * math.sin(chi), -delta * math.cos(chi)
