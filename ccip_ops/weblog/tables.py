"""Readable tables for the stage pages, built from the stages' data (no raw dictionaries on a page).

- :func:`cutout_stats` (stage 10): per plane and Stokes the cutout statistics NRAO's cube weblog
  lists (peak, MAD-rms, peak/MAD-rms; rms-image median and max; pb range), and the plane noise
  against the expected thermal noise;
- :func:`fit_rows` (stage 11): per region box α (NRAO's) and beam-fit α side by side, each with
  its error, I(3 GHz), the S/N gates and the RM fit;
- :func:`model_rows` (stage 11): observed against model Stokes I per plane and region with Δ %
  and S/N, and NRAO's shading classes (|Δ| ≥ 5/10/20/30 %, S/N < 10/7.5/5/3).
"""
from __future__ import annotations

import math

DELTA_STEPS = (30, 20, 10, 5)
SNR_STEPS = (3, 5, 7.5, 10)


def _f(v):
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) else None


def cutout_stats(fan, ratios: dict) -> list[dict]:
    rows = []
    for r in sorted(fan.results, key=lambda r: r.target.reffreq_hz) if fan else []:
        st = r.qa.get("stats") or {}
        keep = fan.keep_of().get(r.group, True)
        for s in "IQUV":
            im, rms, pb = (st.get("image") or {}).get(s, {}), (st.get("rms") or {}).get(s, {}), (st.get("pb") or {}).get(s, {})
            rows.append({"group": r.group, "freq_ghz": r.target.reffreq_hz / 1e9, "keep": keep, "stokes": s,
                         "peak": _f(im.get("peak")), "madrms": _f(im.get("madrms")),
                         "peak_over_madrms": _f(im.get("peak_over_madrms")), "rms_median": _f(rms.get("median")),
                         "rms_max": _f(rms.get("max")), "pb_min": _f(pb.get("min")), "pb_max": _f(pb.get("max")),
                         "thermal": _f(r.qa.get("thermal_sigma_jy")) if s in "IV" else None,
                         "ratio": _f(ratios.get(r.group)) if s == "V" else None})
    return rows


def fit_rows(analysis: dict) -> list[dict]:
    out = []
    for name, reg in (analysis.get("regions") or {}).items():
        box, beam = reg.get("power_law") or {}, reg.get("power_law_point_source") or {}
        rm, ga, gr = reg.get("rotation_measure") or {}, reg.get("gate_alpha") or {}, reg.get("gate_rm") or {}
        out.append({"region": name, "ra": reg.get("ra_deg"), "dec": reg.get("dec_deg"), "x": reg.get("x"),
                    "y": reg.get("y"),
                    "box_alpha": _f(box.get("alpha")), "box_alpha_err": _f(box.get("alpha_err")),
                    "box_I": _f(box.get("I_3GHz")), "box_I_err": _f(box.get("I_3GHz_err")),
                    "beam_alpha": _f(beam.get("alpha")), "beam_alpha_err": _f(beam.get("alpha_err")),
                    "beam_I": _f(beam.get("I_3GHz")), "beam_I_err": _f(beam.get("I_3GHz_err")),
                    "alpha_snr": _f(ga.get("snr")), "alpha_passed": ga.get("passed"),
                    "gate": ga.get("threshold"), "rm": _f(rm.get("rm_rad_m2")), "rm_err": _f(rm.get("rm_err")),
                    "chi0_deg": _f(math.degrees(rm["chi0_rad"])) if rm.get("chi0_rad") is not None else None,
                    "chi0_err_deg": _f(math.degrees(rm["chi0_err"])) if rm.get("chi0_err") is not None else None,
                    "rm_nplanes": rm.get("nplanes"), "pol_snr": _f(gr.get("snr")), "rm_passed": gr.get("passed")})
    return out


def delta_class(delta_pct: float | None) -> str:
    if delta_pct is None:
        return ""
    return next((f"d{s}" for s in DELTA_STEPS if abs(delta_pct) >= s), "")


def snr_class(snr: float | None) -> str:
    if snr is None:
        return ""
    return next((f"s{str(s).replace('.', '_')}" for s in SNR_STEPS if snr < s), "")


def model_rows(analysis: dict) -> dict[str, list[dict]]:
    """{region: rows}: observed box-mean I against the box power law, Δ % = (obs − model)/model."""
    out = {}
    for name, reg in (analysis.get("regions") or {}).items():
        pw = reg.get("power_law")
        rows = []
        for m in reg.get("measurements", []):
            model = pw["I_3GHz"] * (m["freq_hz"] / 3e9) ** pw["alpha"] if pw else None
            delta = 100 * (m["I"] - model) / model if model else None
            snr = m["I"] / m["rms_I"] if m.get("rms_I") else None
            rows.append({"group": m["group"], "freq_ghz": m["freq_hz"] / 1e9, "keep": m["keep"],
                         "observed_mjy": 1e3 * m["I"], "model_mjy": None if model is None else 1e3 * model,
                         "delta_pct": delta, "snr": snr, "delta_class": delta_class(delta),
                         "snr_class": snr_class(snr)})
        out[name] = rows
    return out
