"""Issue 18: the analysis numbers carry their doubt (α error from the plane noise, S/N gates), and
the exported headers are what archives key on (NRAO's VLASSITY values, keyword comments,
FITS checksums). Pure numerics and astropy: no CASA."""
import numpy as np
import pytest

from ccip_ops.heuristics import spectra
from ccip_ops.heuristics.imaging import image_type
from ccip_ops.stages import analyzestokes, exportfits

F = np.linspace(2.05, 3.95, 12)


def _alpha_fits(sigma, n=30, seed=1):
    rng = np.random.default_rng(seed)
    truth = 0.01 * (F / 3.0) ** -0.8
    return [spectra.fit_power_law(F, truth + rng.normal(0, sigma, F.size), np.ones(F.size, bool),
                                  np.full(F.size, sigma)) for _ in range(n)]


def test_alpha_error_shrinks_as_the_noise_falls_and_matches_the_scatter():
    errs, scatter = [], []
    for sigma in (1e-3, 1e-4):
        fits = _alpha_fits(sigma)
        a = np.array([f["alpha"] for f in fits])
        errs.append(np.median([f["alpha_err"] for f in fits]))
        scatter.append(a.std())
        assert abs(a.mean() + 0.8) < 4 * errs[-1]
    assert errs[1] < errs[0] / 5  # 10x less noise: ~10x smaller error
    for e, s in zip(errs, scatter):  # the quoted error is the real scatter, within what 30 trials tell
        assert 0.6 < e / s < 1.6
    assert "TRFLSQFitter" in _alpha_fits(1e-4, n=1)[0]["fitter"]


def test_power_law_weights_follow_the_plane_noise():
    """A plane with a large error bar (and a deviant value) barely moves the fit."""
    truth = 0.01 * (F / 3.0) ** -0.8
    bad = truth.copy()
    bad[0] *= 3
    sigma = np.full(F.size, 1e-5)
    sigma[0] = 1.0
    fit = spectra.fit_power_law(F, bad, np.ones(F.size, bool), sigma)
    assert fit["alpha"] == pytest.approx(-0.8, abs=1e-3)


def _region(q_signal, seed=3, n=12):
    rng = np.random.default_rng(seed)
    sig = 1e-4
    rows = []
    for k, f in enumerate(np.linspace(2.05e9, 3.95e9, n)):
        chi = 0.3 + 30.0 * (2.998e8 / f) ** 2
        q = q_signal * np.cos(2 * chi) + rng.normal(0, sig)
        u = q_signal * np.sin(2 * chi) + rng.normal(0, sig)
        rows.append({"freq_hz": f, "keep": True, "I": 1e-2, "Q": q, "U": u, "V": 0.0, "rms_I": sig,
                     "rms_Q": sig, "rms_U": sig, "I_point": 1e-2, "group": str(k)})
    return rows


def test_a_noise_only_polarised_region_is_gated_and_not_headlined():
    noise = analyzestokes.region_fits(_region(0.0))
    assert noise["gate_rm"]["passed"] is False and noise["gate_rm"]["snr"] < 3
    real = analyzestokes.region_fits(_region(2e-3))
    assert real["gate_rm"]["passed"] is True and real["rotation_measure"]["rm_rad_m2"] == pytest.approx(30, abs=3)
    out = {"regions": {"peak_linpolint": {**noise}, "peak_stokesi": {**real}}}
    text = analyzestokes.notes(out)
    assert "below the S/N gate" in text and "no RM" in text and "RM at the polarised peak" not in text
    assert "box α (NRAO)" in text and "beam-fit α" in text
    out["regions"]["peak_linpolint"] = real
    assert "RM at the polarised peak: 30" in analyzestokes.notes(out) or \
        "RM at the polarised peak: 29" in analyzestokes.notes(out)


def test_rms_median_ignores_masked_pixels():
    rms = np.full((10, 10, 4, 1), 1e-4)
    rms[:3] = 0.0  # blanked edge, masked
    mask = np.ones(rms.shape, bool)
    mask[:3] = False
    assert analyzestokes.masked_medians(rms, mask)["I"] == pytest.approx(1e-4)
    assert np.median(rms[:, :, 0, 0]) == pytest.approx(1e-4)  # (here the median survives;
    rms[:6] = 0.0
    mask[:6] = False  # a wider blank would not)
    assert analyzestokes.masked_medians(rms, mask)["I"] == pytest.approx(1e-4)
    assert np.median(rms[:, :, 0, 0]) == 0.0


@pytest.mark.parametrize("name, ity", [
    ("IMG.spw2.IQU.iter3.image.pbcor.tt0.subim.fits", "INTENSITY_PBCOR_TT0"),
    ("IMG.spw2.V.iter3.image.pbcor.tt0.rms.subim.fits", "RMS_TT0"),
    ("IMG.spw2.IQU.iter3.image.pbcor.tt0.subim.com.fits", "INTENSITY_PBCOR_TT0"),
    ("s7_0.IMG.spw2.IQUV.iter3.psf.tt0", "PSF_TT0"),
    ("s7_0.IMG.spw2.IQUV.iter3.image.tt0", "UNKNOWN"),
    ("s7_0.IMG.spw2.IQUV.iter3.image.pbcor.tt0.rms", "RMS_TT0"),
])
def test_vlassity_is_nraos_image_type(name, ity):
    assert image_type(name) == ity


def test_exported_header_has_every_vlass_comment_and_valid_checksums(tmp_path, caplog):
    from astropy.io import fits

    p = tmp_path / "VLASS2.1.cc.T10t02.J005000-023000.06.2048.v1.spw2.IQU.iter3.image.pbcor.tt0.subim.fits"
    h = fits.PrimaryHDU(np.zeros((1, 1, 4, 4), np.float32))
    h.header["RADESYS"] = "FK5"
    for k in exportfits.VLASS_COMMENTS:
        if k not in ("VLASSITY", "VLASSWP"):
            h.header[k] = "x"
    beams = fits.BinTableHDU.from_columns([fits.Column("BMAJ", "E", array=[1.0])], name="BEAMS")
    fits.HDUList([h, beams]).writeto(p)
    exportfits.fix_header(p, 58000.0, 58000.1, {"VLASSITY": image_type(p.name)})
    assert "VLASSWP is absent" in caplog.text
    exportfits.add_checksums(p)
    with fits.open(p, checksum=True) as hd:
        hd.verify("exception")
        hdr = hd[0].header
        assert hdr["VLASSITY"] == "INTENSITY_PBCOR_TT0" and hdr.comments["VLASSITY"] == "VLASS image type"
        # NRAO's comment, cut at 80 characters as astropy (and NRAO's own files) must
        assert "Median rms calculated from RMS_TT0 (Stokes I) image".startswith(hdr.comments["VLASSRMS"])
        assert hdr.comments["VLASSRMS"].startswith("Median rms calculated from RMS_TT0")
        assert hdr.comments["VLASSBW"] == "Actual bandwidth after flagging"
        assert all("CHECKSUM" in x.header and "DATASUM" in x.header for x in hd)
    with fits.open(p) as hd:  # a changed pixel byte is caught by the checksums
        offset = hd[0]._data_offset
    raw = bytearray(p.read_bytes())
    raw[offset + 3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.warns(Warning, match="(?i)checksum|datasum"):
        fits.open(p, checksum=True).close()
