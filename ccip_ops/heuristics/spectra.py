"""Spectral fits of the Stokes analysis (stage 11, spec §8.2), numpy and astropy only:

- :func:`fit_power_law`: I(ν) = I(3 GHz) (ν / 3 GHz)^α over the kept planes, astropy
  ``PowerLaw1D`` (x_0 fixed at 3 GHz, amplitude ≥ 0, as NRAO) with ``TRFLSQFitter
  (calc_uncertainties=True)`` and weights 1/σ from the plane noise, so α and I(3 GHz) come with
  their 1σ errors (astropy scales the covariance by the reduced χ²: the errors follow the
  scatter about the fit as well as the quoted noise). NRAO uses LevMar with 0/1 weights and
  quotes no error; the rejected planes are left out here, as its zero weights do;
- :func:`snr_gate`: whether a region's signal clears an S/N gate over the kept planes (the median
  of signal/noise), so that an α or an RM of a noise peak is not headlined;
- :func:`point_source_peak`: the peak of a Gaussian with the plane's restoring beam fitted at a
  pixel (amplitude and sub-pixel position free), which the beam's shrinking with frequency does
  not bias as the 3x3 box mean does;
- :func:`fit_rm`: χ(λ²) = χ0 + RM λ² over the kept planes, angles unwrapped in λ² order,
  weighted by the plane noise.
"""
from __future__ import annotations

import math

import numpy as np

C = 299792458.0  # m/s


SNR_GATE = 5.0  # median S/N over the kept planes below which α or RM is reported as not measured


def fit_power_law(freq_ghz, flux, keep, sigma=None) -> dict | None:
    """I(3 GHz), α and their 1σ errors over the kept planes (≥ 3 needed for an error); ``sigma``:
    the plane noise at the region (Jy/beam), else equal weights."""
    import warnings

    from astropy.modeling import fitting, models

    freq_ghz, flux = np.asarray(freq_ghz, float), np.asarray(flux, float)
    sigma = np.ones_like(flux) if sigma is None else np.asarray(sigma, float)
    k = np.asarray(keep, bool) & np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0)
    if k.sum() < 3:
        return None
    pl = models.PowerLaw1D(amplitude=max(float(np.median(flux[k])), 1e-12), x_0=3.0, alpha=0.7,
                           fixed={"x_0": True}, bounds={"amplitude": (0, None)})
    fitter = fitting.TRFLSQFitter(calc_uncertainties=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns when a bound is reached; the result says so
        fit = fitter(pl, freq_ghz[k], flux[k], weights=1.0 / sigma[k], maxiter=1000)
    cov = fitter.fit_info.get("param_cov")
    err = np.sqrt(np.diag(cov)) if cov is not None else np.full(2, np.nan)
    resid = (flux[k] - fit(freq_ghz[k])) / sigma[k]
    return {"I_3GHz": float(fit.amplitude.value), "I_3GHz_err": float(err[0]),
            "alpha": float(-fit.alpha.value), "alpha_err": float(err[1]),
            "chi2_red": float(np.sum(resid**2) / max(k.sum() - 2, 1)), "nplanes": int(k.sum()),
            "fitter": "astropy TRFLSQFitter, weights 1/sigma"}


def snr_gate(signal, noise, keep, threshold: float = SNR_GATE) -> dict:
    """{'snr': median over kept planes of signal/noise, 'threshold', 'passed'}."""
    signal, noise = np.asarray(signal, float), np.asarray(noise, float)
    k = np.asarray(keep, bool) & np.isfinite(signal) & np.isfinite(noise) & (noise > 0)
    snr = float(np.median(signal[k] / noise[k])) if k.any() else float("nan")
    return {"snr": snr, "threshold": threshold, "passed": bool(np.isfinite(snr) and snr >= threshold)}


def point_source_peak(plane: np.ndarray, x: int, y: int, beam: dict, cell_arcsec: float) -> float | None:
    """Peak (Jy/beam = Jy for an unresolved source) of a restoring-beam-shaped Gaussian fitted at (x, y).

    The 3x3 box mean of §8.2 averages the beam over the box, so it falls with the beam size and
    biases the spectral index when the beam shrinks with frequency; a fit with the plane's own
    beam shape (amplitude and sub-pixel position free) does not."""
    from astropy.modeling import fitting, models

    if not beam or not beam.get("bmaj"):
        return None
    f = 2 * math.sqrt(2 * math.log(2))
    smaj, smin = beam["bmaj"] / f / cell_arcsec, beam["bmin"] / f / cell_arcsec
    h = max(2, int(math.ceil(beam["bmaj"] / cell_arcsec)))
    x0, x1, y0, y1 = max(x - h, 0), min(x + h + 1, plane.shape[0]), max(y - h, 0), min(y + h + 1, plane.shape[1])
    cut = plane[x0:x1, y0:y1]
    if not np.isfinite(cut).all():
        return None
    gx, gy = np.mgrid[x0:x1, y0:y1]
    g = models.Gaussian2D(amplitude=float(plane[x, y]), x_mean=x, y_mean=y, x_stddev=smaj, y_stddev=smin,
                          theta=math.radians(90.0 + beam.get("pa", 0.0)),
                          fixed={"x_stddev": True, "y_stddev": True, "theta": True},
                          bounds={"x_mean": (x - 1, x + 1), "y_mean": (y - 1, y + 1)})
    fit = fitting.TRFLSQFitter()(g, gx, gy, cut)
    return float(fit.amplitude.value)


def fit_rm(freq_hz, q, u, sigma, keep) -> dict | None:
    """Weighted linear fit of chi = chi0 + RM lambda^2 over kept planes with unwrapped angles."""
    freq_hz, q, u, sigma = map(np.asarray, (freq_hz, q, u, sigma))
    k = np.asarray(keep, bool) & np.isfinite(q) & np.isfinite(u) & (sigma > 0)
    if k.sum() < 3:
        return None
    lam2 = (C / freq_hz[k]) ** 2
    order = np.argsort(lam2)
    lam2 = lam2[order]
    p = np.hypot(q[k], u[k])[order]
    two_chi = np.unwrap(np.arctan2(u[k], q[k])[order])
    chi = two_chi / 2
    sig_chi = np.clip(sigma[k][order] / (2 * np.maximum(p, 1e-30)), 1e-6, None)
    w = 1 / sig_chi**2
    A = np.vstack([np.ones_like(lam2), lam2]).T
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    chi0, rm = cov @ (A.T @ (w * chi))
    chi2 = float(np.sum(w * (chi - (chi0 + rm * lam2)) ** 2))
    return {"rm_rad_m2": float(rm), "rm_err": float(math.sqrt(cov[1, 1])),
            "chi0_rad": float((chi0 + math.pi / 2) % math.pi - math.pi / 2), "chi0_err": float(math.sqrt(cov[0, 0])),
            "chi0_unwrapped_rad": float(chi0), "chi2": chi2, "nplanes": int(k.sum()), "lambda2_m2": lam2.tolist(), "chi_rad": chi.tolist()}
