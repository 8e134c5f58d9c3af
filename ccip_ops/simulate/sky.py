"""Synthetic VLASS sky and observation geometry: pure numpy, no CASA.

A sky is a list of point sources with Stokes I at 3 GHz, spectral index, fractional linear
polarisation, intrinsic polarisation angle, rotation measure and fractional circular
polarisation. :func:`stokes_at` gives the true IQUV of a source at any frequency; it is the
single definition of "truth" used both to write the visibilities and by the tests.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from ..naming import FIELD_ID_PATTERN

C_LIGHT = 299792458.0

# VLASS S band: 16 science spws (2-17) of 128 MHz from 1.988 GHz; spws 0-1 are the two
# sacrificial windows below the band that the transform stage drops.
SPW_WIDTH_HZ = 128e6
SCIENCE_SPWS = list(range(2, 18))


def spw_start_hz(spw: int) -> float:
    """Lower edge of VLASS spw ``spw`` (0-17)."""
    return 1.988e9 + (spw - 2) * SPW_WIDTH_HZ


def field_centre_deg(field_id: str) -> tuple[float, float]:
    """RA, Dec (deg, J2000) of the phase-centre token of a VLASS field id."""
    if not re.match(FIELD_ID_PATTERN, field_id):
        raise ValueError(f"field id {field_id!r} does not match T<nn>t<nn>.J<hhmmss>[+-]<ddmmss>")
    tok = field_id.split(".J", 1)[1]  # hhmmss[+-]ddmmss
    ra = 15.0 * (int(tok[0:2]) + int(tok[2:4]) / 60 + int(tok[4:6]) / 3600)
    dec = int(tok[7:9]) + int(tok[9:11]) / 60 + int(tok[11:13]) / 3600
    return ra, (-dec if tok[6] == "-" else dec)


def sexagesimal(ra_deg: float, dec_deg: float) -> tuple[int, int, float, str, int, int, float]:
    """(hh, mm, ss, sign, dd, dm, ds) of a position in degrees."""
    h = ra_deg / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = (h - hh - mm / 60) * 3600
    d = abs(dec_deg)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = (d - dd - dm / 60) * 3600
    return hh, mm, ss, ("-" if dec_deg < 0 else "+"), dd, dm, ds


@dataclass
class Source:
    name: str
    ra_deg: float
    dec_deg: float
    flux_3ghz_jy: float  # Stokes I at 3 GHz
    alpha: float  # spectral index, I ~ nu^alpha
    pol_frac: float  # fractional linear polarisation
    chi0_rad: float  # intrinsic polarisation angle (at lambda^2 = 0)
    rm_rad_m2: float  # rotation measure
    v_frac: float  # fractional circular polarisation

    def to_json(self) -> dict:
        return asdict(self)


def stokes_at(src: Source | dict, freq_hz):
    """True (I, Q, U, V) of ``src`` at ``freq_hz`` (scalar or array), in Jy."""
    s = src if isinstance(src, Source) else Source(**src)
    nu = np.asarray(freq_hz, dtype=float)
    i = s.flux_3ghz_jy * (nu / 3e9) ** s.alpha
    lam2 = (C_LIGHT / nu) ** 2
    chi = s.chi0_rad + s.rm_rad_m2 * lam2
    p = s.pol_frac * i
    return i, p * np.cos(2 * chi), p * np.sin(2 * chi), s.v_frac * i


def band_average(src: Source | dict, freqs_hz) -> tuple[float, float, float, float]:
    """Mean true IQUV over a set of channel frequencies (what an mfs image of them measures)."""
    i, q, u, v = stokes_at(src, np.asarray(freqs_hz, dtype=float))
    return float(np.mean(i)), float(np.mean(q)), float(np.mean(u)), float(np.mean(v))


def offset_deg(ra0: float, dec0: float, dx_arcmin: float, dy_arcmin: float) -> tuple[float, float]:
    """Position at tangent-plane offset (dx east, dy north) from (ra0, dec0)."""
    l, m = math.radians(dx_arcmin / 60), math.radians(dy_arcmin / 60)
    d0, a0 = math.radians(dec0), math.radians(ra0)
    n = math.sqrt(1 - l * l - m * m)
    dec = math.asin(m * math.cos(d0) + n * math.sin(d0))
    ra = a0 + math.atan2(l, n * math.cos(d0) - m * math.sin(d0))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def direction_cosines(ra_deg, dec_deg, ra0_deg, dec0_deg):
    """(l, m, n) of positions relative to a phase centre (SIN projection)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    l = np.cos(dec) * np.sin(ra - ra0)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    n = np.sqrt(np.clip(1 - l * l - m * m, 0, None))
    return l, m, n


def make_sky(ra0: float, dec0: float, rng: np.random.Generator, n_faint: int,
             pointings: list[tuple[float, float]]) -> list[Source]:
    """A reproducible sky: a bright polarised source on the first pointing, a second
    polarised source on another pointing, and ``n_faint`` fainter sources near pointings."""
    srcs = []
    p0 = pointings[0]
    ra, dec = offset_deg(ra0, dec0, p0[0] + 0.3, p0[1] - 0.2)
    srcs.append(Source("S1", ra, dec, 0.100, -0.7, 0.08, math.radians(25.0), 40.0, 0.005))
    p1 = pointings[-1]
    ra, dec = offset_deg(ra0, dec0, p1[0] - 0.4, p1[1] + 0.5)
    srcs.append(Source("S2", ra, dec, 0.040, -0.3, 0.12, math.radians(-40.0), -25.0, 0.0))
    for k in range(n_faint):
        px, py = pointings[k % len(pointings)]
        dx, dy = rng.uniform(-3.0, 3.0, size=2)
        ra, dec = offset_deg(ra0, dec0, px + dx, py + dy)
        srcs.append(Source(f"F{k + 1}", ra, dec, float(rng.uniform(0.004, 0.015)),
                           float(rng.uniform(-1.2, 0.0)), 0.0, 0.0, 0.0, 0.0))
    return srcs


def sefd_s_band() -> tuple[np.ndarray, np.ndarray]:
    """(frequency Hz, SEFD Jy) of the VLA S-band table (the pipeline's own, heuristics.sefd)."""
    from ..heuristics.sefd import S_BAND

    t = np.array(S_BAND)
    return t[:, 0] * 1e6, t[:, 1]


def visibility_sigma(freq_hz, chan_width_hz: float, t_int_s: float, eta: float = 0.93):
    """Thermal noise (Jy) of one correlation of one visibility: SEFD / (eta sqrt(2 dnu t))."""
    f, s = sefd_s_band()
    sefd = np.interp(np.asarray(freq_hz, dtype=float), f, s)
    return sefd / (eta * np.sqrt(2.0 * chan_width_hz * t_int_s))
