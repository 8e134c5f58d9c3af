"""Field selection of VLASS-SE-CUBE (spec §3.3): a box around the phase centre."""
from __future__ import annotations

import fnmatch

from .. import casa_env
from ..casatables import msmetadata

NAME_PATTERNS = ("0*", "1*", "2*", "T*", '"T*')
CUTOUT_HALF_ARCSEC = 1800.0
DEFAULT_BUFFER_ARCSEC = 1000.0


def parse_phasecenter(pc: str) -> tuple[float, float]:
    """RA, Dec (rad) of a CASA direction string such as 'J2000 00:50:00.000 -02.30.00.000'."""
    ct = casa_env.tools()
    me, qa = ct.measures(), ct.quanta()
    parts = pc.split()
    if len(parts) != 3:
        raise ValueError(f"phasecenter {pc!r} is not '<frame> <ra> <dec>'")
    d = me.direction(parts[0], parts[1], parts[2])
    return qa.convert(d["m0"], "rad")["value"], qa.convert(d["m1"], "rad")["value"]


def box_fields(vis: str, phasecenter: str, half_arcsec: float) -> list[int]:
    """Field ids whose name matches the VLASS patterns and whose spherical offsets from the
    phase centre satisfy |dRA cos| < D and |dDec| < D (a box, not a circle)."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    ids = []
    ra0, dec0 = parse_phasecenter(phasecenter)
    c0 = SkyCoord(ra0 * u.rad, dec0 * u.rad)
    with msmetadata(vis) as msmd:
        for fid, name in enumerate(msmd.fieldnames()):
            if not any(fnmatch.fnmatch(name, p) for p in NAME_PATTERNS):
                continue
            d = msmd.phasecenter(fid)
            c = SkyCoord(d["m0"]["value"] * u.rad, d["m1"]["value"] * u.rad)
            dra, ddec = c0.spherical_offsets_to(c)
            if abs(dra.to_value(u.arcsec)) < half_arcsec and abs(ddec.to_value(u.arcsec)) < half_arcsec:
                ids.append(fid)
    return ids


def spw_mean_freqs(vis: str, spws: list[int]) -> dict[int, float]:
    with msmetadata(vis) as msmd:
        return {s: float(msmd.meanfreq(s)) for s in spws}


