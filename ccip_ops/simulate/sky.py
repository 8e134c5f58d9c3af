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

from ..model import FIELD_ID_PATTERN

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


# The S-band SEFD table of the NRAO pipeline (spec/ccip_reference.md §8.3), MHz -> Jy.
_SEFD_S = """1850.5:1192.36 1889.5:608.29 1909:518.86 1928.5:466.23 1959:412.83 1978.5:399.76 1998:389.98
2017.5:397.59 2037:378.48 2056.5:380.58 2087:363.92 2106.5:369.22 2126:362.47 2145.5:361.26 2165:354.54
2184.5:356.73 2215:360.61 2234.5:373.75 2254:358.66 2273.5:368.83 2293:368.01 2312.5:370.54 2362.5:407.4
2382:395.34 2401.5:410.65 2421:405.56 2440.5:397.02 2490.5:408.21 2510:391.13 2529.5:391.54 2549:397.53
2561.5:400.83 2568.5:395.02 2581:404.24 2599:395.1 2618.5:392.48 2638:390.49 2650.5:389.76 2657.5:388.92
2670:390.14 2677:394.91 2689.5:390.25 2709:398.79 2759:400.14 2778.5:400.44 2798:400.07 2817.5:396.77
2837:391.76 2856.5:385.39 2887:386.54 2906.5:377.37 2926:369.52 2945.5:361.78 2965:366.61 2984.5:363.98
3015:356.72 3034.5:352.54 3054:351.83 3073.5:343.59 3093:349.49 3112.5:340.65 3143:323.39 3162.5:318.8
3182:319.15 3201.5:313.14 3221:320.95 3240.5:316.72 3271:325.67 3290.5:312.57 3310:315.16 3329.5:305.4
3340:313.05 3349:306.8 3359.5:308.24 3368.5:302.3 3379:295.35 3399:301.63 3418.5:290.15 3431:288.95
3438:293.4 3450.5:290.32 3457.5:289.07 3470:279.29 3477:283.45 3489.5:282.57 3509:277.83 3528.5:280.07
3559:275.2 3578.5:278.15 3598:278.19 3617.5:276.23 3637:283.72 3656.5:279.18 3687:290.08 3706.5:290.99
3726:307.19 3745.5:299.76 3765:316.61 3784.5:311.7 3815:326.38 3834.5:326.38 3854:329.46 3873.5:321.33
3893:310.28 3912.5:315.13 3943:322.59 3962.5:318.89 3982:327.18 4001.5:340.19 4021:337.68 4040.5:342.23
4071:331.54 4090.5:326.09 4110:324.72 4129.5:359.02 4149:420.67 4168.5:473.54 4199:929 4218.5:1415.87"""


def sefd_s_band() -> tuple[np.ndarray, np.ndarray]:
    """(frequency Hz, SEFD Jy) of the VLA S-band table."""
    pairs = [p.split(":") for p in _SEFD_S.split()]
    return (np.array([float(f) for f, _ in pairs]) * 1e6, np.array([float(s) for _, s in pairs]))


def visibility_sigma(freq_hz, chan_width_hz: float, t_int_s: float, eta: float = 0.93):
    """Thermal noise (Jy) of one correlation of one visibility: SEFD / (eta sqrt(2 dnu t))."""
    f, s = sefd_s_band()
    sefd = np.interp(np.asarray(freq_hz, dtype=float), f, s)
    return sefd / (eta * np.sqrt(2.0 * chan_width_hz * t_int_s))
