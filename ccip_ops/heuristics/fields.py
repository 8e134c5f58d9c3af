"""Field selection of VLASS-SE-CUBE (spec §3.3): TARGET fields in a box around the phase centre.

As NRAO's: a field is selected if it was observed with the TARGET intent (STATE ``OBS_MODE``
containing ``OBSERVE_TARGET``, :func:`ccip_ops.msinfo.target_fields`), its name matches the VLASS
patterns and it lies in the box. A field that matches the name and the box but was not a target
(a calibrator scan) is left out and named in :attr:`FieldSelection.notes`; an MS that records no
intents at all is selected by name and box only, and that is said too.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .. import casa_env, msinfo
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


@dataclass(frozen=True)
class FieldSelection:
    ids: tuple[int, ...]
    not_target: tuple[str, ...]  # in the box with a VLASS name, but never observed as TARGET
    intents_recorded: bool

    @property
    def notes(self) -> list[str]:
        out = []
        if not self.intents_recorded:
            out.append("the MS records no scan intents (empty STATE): fields selected by name and position only")
        if self.not_target:
            out.append(f"fields {list(self.not_target)} match the VLASS name pattern and lie in the box but "
                       "have no TARGET intent (OBSERVE_TARGET): not imaged")
        return out


def select_fields(vis: str, phasecenter: str, half_arcsec: float) -> FieldSelection:
    """Fields observed as TARGET whose name matches the VLASS patterns and whose spherical offsets
    from the phase centre satisfy |dRA cos| < D and |dDec| < D (a box, not a circle)."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    ids, not_target = [], []
    targets = msinfo.target_fields(vis)
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
                if targets is None or fid in targets:
                    ids.append(fid)
                else:
                    not_target.append(name)
    return FieldSelection(tuple(ids), tuple(not_target), targets is not None)


def box_fields(vis: str, phasecenter: str, half_arcsec: float) -> list[int]:
    """The field ids of :func:`select_fields`."""
    return list(select_fields(vis, phasecenter, half_arcsec).ids)


def spw_mean_freqs(vis: str, spws: list[int]) -> dict[int, float]:
    with msmetadata(vis) as msmd:
        return {s: float(msmd.meanfreq(s)) for s in spws}


