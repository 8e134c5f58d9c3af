"""hifv_analyzestokescubes (stage 11, spec §8), plus a rotation-measure fit.

Two regions: the Stokes-I peak and the linearly polarised intensity peak, searched in the
lowest-frequency pbcor cutout inside the intersection of the highest-frequency plane's
iter2 clean mask and iter3 pb mask. Per plane and region: 3x3-pixel box means of I, Q, U,
V, the Stokes-I rms at the region, the median rms per Stokes, beam area, keep flag. Then a
power-law fit of I(ν) at 3 GHz (of the box means, as NRAO; and, added here, of the peaks of a
restoring-beam fit, which the beam's shrinking with frequency does not bias) and, at each region, a fit of the polarisation angle
against λ² over the kept planes (ambiguity resolved by unwrapping in λ² order) giving RM
and the intrinsic angle with uncertainties from the plane noise. Writes
``working/analyzestokes.json`` and plots in ``html/stage11/``. A plane whose cutout is
missing or blank is skipped with a warning naming it.
"""
from __future__ import annotations

import json
import logging
import math
import shutil

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
    fit = fitting.LevMarLSQFitter()(g, gx, gy, cut)
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
        rms_path = tree.abs(r.images["rms_subim"])
        if not rms_path.exists():
            log.warning("rms cutout of spw group %s is missing (%s): plane skipped", r.target.group, rms_path.name)
            continue
        cubes.append((r, a, _read(rms_path)))
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
    cell_arcsec = abs(math.degrees(cs.increment(format="n", type="direction")["numeric"][0])) * 3600
    cs.done()
    out = {"regions": {}, "planes": [], "cell_arcsec": cell_arcsec}
    for r, a, rms in cubes:
        out["planes"].append({"group": r.target.group, "freq_hz": r.target.reffreq_hz,
                              "keep": keep_of.get(r.target.group, True),
                              "rms_median": {s: float(np.nanmedian(rms[:, :, k, 0])) for k, s in enumerate("IQUV")},
                              "beam": r.beam, "beam_area_arcsec2": r.beam.get("bmaj", 0) * r.beam.get("bmin", 0)})
    for name, roi in rois.items():
        rows = []
        x, y = roi["x"], roi["y"]
        for (r, a, rms), pl in zip(cubes, out["planes"]):
            sl = (slice(max(x - 1, 0), x + 2), slice(max(y - 1, 0), y + 2))
            vals = {s: float(np.mean(a[sl][:, :, k, 0])) for k, s in enumerate("IQUV")}
            rows.append({**vals, "group": pl["group"], "freq_hz": pl["freq_hz"], "keep": pl["keep"],
                         "I_point": point_source_peak(a[:, :, 0, 0], x, y, r.beam, cell_arcsec),
                         "rms_I": float(np.mean(rms[sl][:, :, 0, 0])),
                         "rms_Q": float(np.mean(rms[sl][:, :, 1, 0])), "rms_U": float(np.mean(rms[sl][:, :, 2, 0]))})
        f = np.array([r_["freq_hz"] for r_ in rows])
        keep = np.array([r_["keep"] for r_ in rows])
        pw = fit_power_law(f / 1e9, np.array([r_["I"] for r_ in rows]), keep)
        ip = np.array([np.nan if r_["I_point"] is None else r_["I_point"] for r_ in rows])
        pw_point = fit_power_law(f / 1e9, np.nan_to_num(ip), keep & np.isfinite(ip))
        rm = fit_rm(f, np.array([r_["Q"] for r_ in rows]), np.array([r_["U"] for r_ in rows]),
                    np.array([0.5 * (r_["rms_Q"] + r_["rms_U"]) for r_ in rows]), keep)
        out["regions"][name] = {**roi, "measurements": rows, "power_law": pw,
                               "power_law_point_source": pw_point, "rotation_measure": rm}
    _plots(tree, out)  # adds the SEFD normalisation of the rms plot
    tmp = tree.working / "analyzestokes.json.partial"
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(tree.working / "analyzestokes.json")
    shutil.copy2(tree.working / "analyzestokes.json", tree.html / "stage11" / "analyzestokes.json")
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
        fl = np.array([r["I"] for r in rows]) * 1e3
        kp = np.array([r["keep"] for r in rows], bool)
        rms_i = [p["rms_median"]["I"] for p in out["planes"]]
        ax.loglog(f, fl, "o", mfc="none", color="C0", label="all planes")
        ax.loglog(f[kp], fl[kp], "o", color="C0", label="kept planes")
        ax.axhspan(1e-6, 2e3 * float(np.median(rms_i)), color="0.85", label="Below 2σ")
        ff = np.linspace(2, 4, 50)
        for key, style, lab in (("power_law", "-", "3×3 box"), ("power_law_point_source", "--", "beam fit")):
            pw = reg.get(key)
            if pw:
                ax.plot(ff, 1e3 * pw["I_3GHz"] * (ff / 3) ** pw["alpha"], style,
                        label=f"{lab}: I(3 GHz) {1e3 * pw['I_3GHz']:.2f} mJy, α {pw['alpha']:.2f}")
        ax.set(xlabel="Frequency [GHz]", ylabel="Stokes I [mJy/beam]",
               ylim=(max(1e-3, 0.5 * float(np.nanmin(fl[fl > 0])) if (fl > 0).any() else 1e-3), 2 * np.nanmax(fl)))
        ax.legend(fontsize=6)
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
    _rms_plot(out, d, plt)


def _rms_plot(out: dict, d, plt) -> None:
    """rms_Median_vs_freq.png: median rms per Stokes vs frequency with the normalised S-band SEFD (§8.3)."""
    from ..heuristics import sefd

    pl = sorted(out["planes"], key=lambda p: p["freq_hz"])
    if not pl:
        return
    f = np.array([p["freq_hz"] for p in pl])
    kp = np.array([p["keep"] for p in pl], bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, st in enumerate("IQUV"):
        y = np.array([p["rms_median"][st] for p in pl]) * 1e3
        ax.plot(f[kp] / 1e9, y[kp], "-", color=f"C{k}", label=st)
        ax.plot(f / 1e9, y, "o", mfc="none", color=f"C{k}")
        if st == "I":
            for p, yy in zip(pl, y):
                ax.annotate(p["group"], (p["freq_hz"] / 1e9, yy), fontsize=5)
    scale = sefd.normalisation(f, [[p["rms_median"][s] for s in "QUV"] for p in pl])
    t = sefd.table(float(f.mean()))
    if scale is not None and t is not None:
        ax.plot(t[:, 0] / 1e3, t[:, 1] * scale * 1e3, color="0.5", label="SEFD_norm")
        out["sefd_scale"] = scale
    ax.set(xlim=(1.9, 4.1), xlabel="Frequency [GHz]", ylabel="median rms [mJy/beam]")
    ax.legend(fontsize=6)
    fig.savefig(d / "rms_Median_vs_freq.png", dpi=80)
    plt.close(fig)
