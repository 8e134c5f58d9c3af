"""The numerics of the Stokes analysis and plane rejection on synthetic arrays with known answers:
the rotation-measure fit, the power laws, the restoring-beam fit, the robust statistics."""
import math

import numpy as np
import pytest

from ccip_ops.heuristics import planes, sefd, spectra, stats

C = spectra.C


def _pol(freq_hz, rm, chi0, p=1.0):
    lam2 = (C / np.asarray(freq_hz)) ** 2
    chi = chi0 + rm * lam2
    return p * np.cos(2 * chi), p * np.sin(2 * chi)


def test_rm_fit_recovers_rm_and_angle_without_noise():
    f = np.linspace(2.0e9, 4.0e9, 8)
    q, u = _pol(f, rm=35.0, chi0=0.4)
    fit = spectra.fit_rm(f, q, u, np.full(f.size, 1e-3), np.ones(f.size, bool))
    assert fit["rm_rad_m2"] == pytest.approx(35.0, abs=1e-6)
    assert fit["chi0_rad"] == pytest.approx(0.4, abs=1e-6)
    assert fit["nplanes"] == 8 and fit["chi2"] < 1e-12


def test_rm_fit_unwraps_a_large_rm():
    """RM 300 rad/m2 turns the angle by > pi across S band: unwrapping in lambda^2 order recovers it."""
    f = np.linspace(2.0e9, 4.0e9, 16)
    q, u = _pol(f, rm=300.0, chi0=-1.0)
    fit = spectra.fit_rm(f, q, u, np.full(f.size, 1e-3), np.ones(f.size, bool))
    assert fit["rm_rad_m2"] == pytest.approx(300.0, abs=1e-6)
    assert fit["chi0_rad"] == pytest.approx(-1.0, abs=1e-6)  # folded into [-pi/2, pi/2)


def test_rm_error_follows_the_noise_and_rejected_planes_are_left_out():
    rng = np.random.default_rng(1)
    f = np.linspace(2.0e9, 4.0e9, 12)
    q, u = _pol(f, rm=-20.0, chi0=0.1, p=0.05)
    errs = []
    for sigma in (1e-3, 4e-3):
        fits = [spectra.fit_rm(f, q + rng.normal(0, sigma, f.size), u + rng.normal(0, sigma, f.size),
                               np.full(f.size, sigma), np.ones(f.size, bool)) for _ in range(200)]
        rms = np.std([x["rm_rad_m2"] for x in fits])
        errs.append(np.median([x["rm_err"] for x in fits]))
        assert errs[-1] == pytest.approx(rms, rel=0.2)  # the quoted error is the scatter
    assert errs[1] == pytest.approx(4 * errs[0], rel=0.05)
    keep = np.ones(f.size, bool)
    keep[3] = False
    q2 = q.copy()
    q2[3] = -q2[3]  # a bad plane
    assert spectra.fit_rm(f, q2, u, np.full(f.size, 1e-4), keep)["rm_rad_m2"] == pytest.approx(-20.0, abs=1e-6)
    assert spectra.fit_rm(f[:2], q[:2], u[:2], np.full(2, 1e-3), np.ones(2, bool)) is None  # < 3 planes


def test_power_law_recovers_amplitude_and_index_over_kept_planes():
    f = np.linspace(2.0, 4.0, 8)
    flux = 0.02 * (f / 3.0) ** -0.7
    keep = np.ones(8, bool)
    flux_bad = flux.copy()
    flux_bad[2] *= 5
    keep[2] = False
    fit = spectra.fit_power_law(f, flux_bad, keep)
    assert fit["I_3GHz"] == pytest.approx(0.02, rel=1e-4)
    assert fit["alpha"] == pytest.approx(-0.7, abs=1e-3)
    assert spectra.fit_power_law(f[:1], flux[:1], keep[:1]) is None


def test_beam_fit_gives_the_peak_of_a_point_source_where_the_box_mean_does_not():
    cell, beam = 1.0, {"bmaj": 6.0, "bmin": 4.0, "pa": 30.0}
    f = 2 * math.sqrt(2 * math.log(2))
    x0, y0 = 40.3, 39.8
    gx, gy = np.mgrid[0:80, 0:80]
    # a Gaussian of the beam's shape (x = first axis; theta as the fit uses it)
    from astropy.modeling import models

    g = models.Gaussian2D(0.05, x0, y0, beam["bmaj"] / f / cell, beam["bmin"] / f / cell,
                          theta=math.radians(90.0 + beam["pa"]))
    img = g(gx, gy)
    peak = spectra.point_source_peak(img, 40, 40, beam, cell)
    assert peak == pytest.approx(0.05, rel=1e-3)
    assert img[39:42, 39:42].mean() < 0.95 * 0.05  # the 3x3 box mean reads low
    img[38, 38] = np.nan
    assert spectra.point_source_peak(img, 40, 40, beam, cell) is None  # a blanked pixel: no fit


def test_robust_statistics_of_gaussian_noise_with_an_outlier():
    rng = np.random.default_rng(2)
    a = rng.normal(0.1, 2.0, 200_000)
    a[0] = 1000.0
    a[1] = np.nan
    s = stats.robust(a)
    assert s["madrms"] == pytest.approx(2.0, rel=0.01)
    assert s["median"] == pytest.approx(0.1, abs=0.02)
    assert s["peak"] == 1000.0 and s["max"] == 1000.0
    assert s["peak_over_madrms"] == pytest.approx(500, rel=0.01)
    assert math.isnan(stats.robust(np.full(4, np.nan))["madrms"])


def test_plane_rejection_by_beam_and_flags():
    freqs = np.linspace(2.1e9, 3.9e9, 7)
    pl = [{"group": str(k), "label": f"spw{k}", "spws": [k], "freq": float(fq), "bmaj": 3.0 * 3e9 / fq,
           "bmin": 2.0 * 3e9 / fq, "flagpct": 0.1} for k, fq in enumerate(freqs)]
    pl[2]["bmaj"] *= 1.5  # a beam 50 % too large
    pl[5]["flagpct"] = 0.85  # flagged above 0.8
    out = planes.keep_flags(pl)
    assert [p["keep"] for p in out] == [True, True, False, True, True, False, True]
    assert out[2]["why"] == ["beam deviation"] and out[5]["why"] == ["flagged fraction"]
    assert sum(p["reference"] for p in out) == 1
    assert all(p["keep"] for p in planes.keep_flags(pl, {"apply": False}))
    assert planes.keep_flags(pl, {"exclude_spw": "2"})[2]["keep"]


def test_sefd_normalisation_is_the_median_ratio():
    f = np.array([2.2e9, 3.0e9, 3.6e9])
    t = sefd.table(f.mean())
    s = np.interp(f / 1e6, t[:, 0], t[:, 1])
    rms = np.outer(s, [1.0, 1.0, 1.0]) * 2e-6
    assert sefd.normalisation(f, rms) == pytest.approx(2e-6)
    assert sefd.table(1.0e9) is None
