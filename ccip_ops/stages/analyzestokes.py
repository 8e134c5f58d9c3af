"""hifv_analyzestokescubes (stage 11, spec §8), plus a rotation-measure fit.

Two regions: the Stokes-I peak and the linearly polarised intensity peak, searched in the
lowest-frequency pbcor cutout inside the intersection of the highest-frequency plane's
iter2 clean mask and iter3 pb mask. Per plane and region: 3x3-pixel box means of I, Q, U,
V, the Stokes-I rms at the region, the median rms per Stokes, beam area, keep flag. Then a
power-law fit of I(ν) at 3 GHz and, at each region, a fit of the polarisation angle
against λ² over the kept planes (ambiguity resolved by unwrapping in λ² order) giving RM
and the intrinsic angle with uncertainties from the plane noise. Writes
``working/analyzestokes.json`` and plots in ``html/stage11/``. A plane whose cutout is
missing or blank is skipped with a warning naming it.
"""
from __future__ import annotations

import json
import logging
import math

import numpy as np

from .. import casa_env
from ..model import ImagingResult
from ..runtree import RunTree

log = logging.getLogger("ccip")
C = 299792458.0


def _read(path, stokes_i_only=False):
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(path))
    a = ia.getchunk()
    ia.close()
    return a[:, :, 0, 0] if stokes_i_only else a


def _mask_plane(tree: RunTree, res: ImagingResult, name: str) -> np.ndarray | None:
    img = str(tree.abs(res.images["image"]))
    base = img[: -len(".iter3.image.tt0")]
    p = tree.working / (base.split("/")[-1] + name)
    if not p.exists():
        log.warning("mask %s is missing: not used in the peak search", p.name)
        return None
    m = _read(p, stokes_i_only=True)
    box = res.qa.get("cutout_box")
    if box:
        m = m[box[0]:box[2] + 1, box[1]:box[3] + 1]
    return m > 0.5


def fit_power_law(freq_ghz, flux, keep):
    from astropy.modeling import fitting, models

    keep = np.asarray(keep, bool)
    if keep.sum() < 2:
        return None
    pl = models.PowerLaw1D(amplitude=float(np.median(flux)), x_0=3.0, alpha=0.7, fixed={"x_0": True},
                           bounds={"amplitude": (0, None)})
    fit = fitting.LevMarLSQFitter()(pl, np.asarray(freq_ghz), np.asarray(flux), weights=keep.astype(float))
    return {"I_3GHz": float(fit.amplitude.value), "alpha": float(-fit.alpha.value)}


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


def run(tree: RunTree, results: list[ImagingResult], planes: list[dict]) -> dict:
    keep_of = {p["group"]: p["keep"] for p in planes}
    ok = [r for r in results if r.status == "ok" and r.images.get("image_pbcor_subim")]
    cubes = []
    for r in ok:
        path = tree.abs(r.images["image_pbcor_subim"])
        if not path.exists():
            log.warning("pbcor cutout of spw group %s is missing (%s): plane skipped", r.target.group, path.name)
            continue
        a = _read(path)
        if not np.isfinite(a).any() or np.nanmax(np.abs(a)) == 0:
            log.warning("pbcor cutout of spw group %s is blank (%s): plane skipped", r.target.group, path.name)
            continue
        cubes.append((r, a, _read(tree.abs(r.images["rms_subim"]))))
    if not cubes:
        raise RuntimeError("no usable pbcor cutout: nothing to analyse")
    cubes.sort(key=lambda c: c[0].target.reffreq_hz)
    low, high = cubes[0], cubes[-1]
    m2 = _mask_plane(tree, high[0], ".iter2.cleanmask")
    m3 = _mask_plane(tree, high[0], ".iter3.mask")
    search = np.ones(low[1].shape[:2], bool)
    for m in (m2, m3):
        if m is not None and m.shape == search.shape:
            search &= m
    if not search.any():
        log.warning("peak-search mask is empty: searching the whole cutout")
        search[:] = True
    I, Q, U = low[1][:, :, 0, 0], low[1][:, :, 1, 0], low[1][:, :, 2, 0]
    lpi = np.hypot(Q, U)
    rois = {}
    for name, plane in (("peak_stokesi", I), ("peak_linpolint", lpi)):
        x, y = np.unravel_index(np.nanargmax(np.where(search, plane, -np.inf)), plane.shape)
        rois[name] = {"x": int(x), "y": int(y)}
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(tree.abs(low[0].images["image_pbcor_subim"])))
    cs = ia.coordsys()
    ia.close()
    for roi in rois.values():
        w = cs.toworld([roi["x"], roi["y"], 0, 0])["numeric"]
        roi["ra_deg"], roi["dec_deg"] = math.degrees(w[0]) % 360, math.degrees(w[1])
    cs.done()
    out = {"regions": {}, "planes": []}
    for r, a, rms in cubes:
        out["planes"].append({"group": r.target.group, "freq_hz": r.target.reffreq_hz,
                              "keep": keep_of.get(r.target.group, True),
                              "rms_median": {s: float(np.nanmedian(rms[:, :, k, 0])) for k, s in enumerate("IQUV")},
                              "beam_area_arcsec2": r.beam.get("bmaj", 0) * r.beam.get("bmin", 0)})
    for name, roi in rois.items():
        rows = []
        x, y = roi["x"], roi["y"]
        for (r, a, rms), pl in zip(cubes, out["planes"]):
            sl = (slice(max(x - 1, 0), x + 2), slice(max(y - 1, 0), y + 2))
            vals = {s: float(np.mean(a[sl][:, :, k, 0])) for k, s in enumerate("IQUV")}
            rows.append({**vals, "group": pl["group"], "freq_hz": pl["freq_hz"], "keep": pl["keep"],
                         "rms_I": float(np.mean(rms[sl][:, :, 0, 0])),
                         "rms_Q": float(np.mean(rms[sl][:, :, 1, 0])), "rms_U": float(np.mean(rms[sl][:, :, 2, 0]))})
        f = np.array([r_["freq_hz"] for r_ in rows])
        keep = np.array([r_["keep"] for r_ in rows])
        pw = fit_power_law(f / 1e9, np.array([r_["I"] for r_ in rows]), keep)
        rm = fit_rm(f, np.array([r_["Q"] for r_ in rows]), np.array([r_["U"] for r_ in rows]),
                    np.array([0.5 * (r_["rms_Q"] + r_["rms_U"]) for r_ in rows]), keep)
        out["regions"][name] = {**roi, "measurements": rows, "power_law": pw, "rotation_measure": rm}
    (tree.working / "analyzestokes.json").write_text(json.dumps(out, indent=1))
    _plots(tree, out)
    return out


def _plots(tree: RunTree, out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = tree.html / "stage11"
    d.mkdir(parents=True, exist_ok=True)
    for name, reg in out["regions"].items():
        rows = reg["measurements"]
        fig, ax = plt.subplots(figsize=(5, 5))
        cmap = plt.get_cmap("rainbow_r")
        for k, r in enumerate(rows):
            c = cmap(k / max(len(rows) - 1, 1))
            ax.scatter(r["Q"] / r["I"], r["U"] / r["I"], color=c if r["keep"] else "none", edgecolors=c,
                       label=f"{r['group']} : {r['freq_hz'] / 1e9:.3f}" + ("" if r["keep"] else " (rejected)"))
        lim = 1.2 * max(max(abs(r["Q"] / r["I"]), abs(r["U"] / r["I"])) for r in rows) or 1
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="Q/I", ylabel="U/I", aspect="equal",
               title=f"{reg['ra_deg']:.5f} {reg['dec_deg']:.5f} ({reg['x']},{reg['y']})")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.legend(fontsize=6)
        fig.savefig(d / f"stokes_summary_u_vs_q_{name}.png", dpi=80)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 4))
        f = np.array([r["freq_hz"] for r in rows]) / 1e9
        ax.loglog(f, [r["I"] * 1e3 for r in rows], "o", mfc="none")
        if reg["power_law"]:
            ff = np.linspace(2, 4, 50)
            ax.plot(ff, 1e3 * reg["power_law"]["I_3GHz"] * (ff / 3) ** reg["power_law"]["alpha"], "-")
        ax.set(xlabel="Frequency [GHz]", ylabel="Stokes I [mJy/beam]")
        fig.savefig(d / f"stokes_summary_flux_vs_freq_{name}.png", dpi=80)
        plt.close(fig)
        rm = reg["rotation_measure"]
        if rm:
            fig, ax = plt.subplots(figsize=(5, 4))
            lam2 = np.array(rm["lambda2_m2"])
            ax.plot(lam2, np.degrees(rm["chi_rad"]), "o")
            ax.plot(lam2, np.degrees(rm["chi0_unwrapped_rad"] + rm["rm_rad_m2"] * lam2), "-",
                    label=f"RM = {rm['rm_rad_m2']:.1f} ± {rm['rm_err']:.1f} rad/m²")
            ax.set(xlabel="λ² [m²]", ylabel="χ [deg]")
            ax.legend()
            fig.savefig(d / f"rotation_measure_{name}.png", dpi=80)
            plt.close(fig)
