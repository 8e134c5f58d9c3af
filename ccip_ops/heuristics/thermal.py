"""Expected thermal noise of a plane (the radiometer equation), for the rms QA score.

Per correlation and visibility (one channel, one integration) the VLA's thermal noise is
σ_vis = SEFD(ν) / (η_c √(2 Δν t_int)) (SEFD from NRAO's S-band table, :mod:`.sefd`; η_c = 0.93,
the correlator efficiency of the VLA sensitivity calculator). A Stokes-I (or V) point-source
estimate from N unflagged visibilities per polarisation (RR and LL) has σ = σ_vis / √(2N); in a
mosaic each pointing f contributes with its primary-beam gain at the point, so at the phase centre

    σ_I = 1 / √( 2 Σ_f Σ_spw PB_f² N_f,spw / σ_vis,spw² )

the noise of the linear mosaic of natural-weighted pointings. Robust 1 (VLASS's) is within a few
per cent of natural weighting, so a measured plane noise well above this says the plane is
not thermal-noise limited (RFI, calibration, deconvolution). PB: a Gaussian of FWHM 45′/ν[GHz]
(VLA Observational Status Summary).
"""
from __future__ import annotations

import math

import numpy as np

from .sefd import S_BAND

ETA_C = 0.93
PB_FWHM_ARCMIN_AT_1GHZ = 45.0


def sefd_jy(freq_hz: float) -> float:
    t = np.array(S_BAND)
    return float(np.interp(freq_hz / 1e6, t[:, 0], t[:, 1]))


def visibility_sigma(freq_hz: float, chan_width_hz: float, t_int_s: float, eta: float = ETA_C) -> float:
    """Thermal noise (Jy) of one correlation of one visibility."""
    return sefd_jy(freq_hz) / (eta * math.sqrt(2.0 * abs(chan_width_hz) * t_int_s))


def pb_gain(offset_rad: float, freq_hz: float) -> float:
    fwhm = math.radians(PB_FWHM_ARCMIN_AT_1GHZ / 60.0) / (freq_hz / 1e9)
    return math.exp(-4 * math.log(2) * (offset_rad / fwhm) ** 2)


def mosaic_sigma(terms) -> float | None:
    """σ_I at a point from ``terms``: (n_vis per polarisation, σ_vis (Jy), PB gain) per pointing
    and spw."""
    s = sum(2.0 * n * g * g / (sig * sig) for n, sig, g in terms if n > 0 and sig > 0)
    return 1.0 / math.sqrt(s) if s > 0 else None
