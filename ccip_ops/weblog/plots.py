"""The weblog's plots (matplotlib, Agg): thumbnails of the pbcor cutouts (read decimated) and the
plots of stage 11.

Drawn when the weblog is written, from what the stages left on disk; a plot that cannot be drawn
is left out with a warning, never fails the weblog.
"""
from __future__ import annotations

import logging

import numpy as np

from .. import casaimage, naming
from ..heuristics import sefd
from ..runtree import RunTree

log = logging.getLogger("ccip")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


THUMB_MAX_PX = 512  # a thumbnail is ~150 px wide: reading more of a 6200² cutout only costs memory


def decimated(path, max_px: int = THUMB_MAX_PX) -> np.ndarray:
    """The image's pixels read every n-th pixel along x and y (``getchunk(inc=...)``), n such that
    neither side exceeds ``max_px``: a thumbnail of a VLASS cutout holds ~1 MB, not 600 MB."""
    with casaimage.opened(path) as ia:
        shape = ia.shape()
        n = max(1, -(-max(shape[0], shape[1]) // max_px))
        return ia.getchunk(inc=[n, n] + [1] * (len(shape) - 2))


def thumbnails(tree: RunTree, results) -> dict[str, list[str]]:
    """One PNG per group and Stokes of the pbcor cutout (read decimated); paths relative to html/."""
    plt = _pyplot()
    out: dict[str, list[str]] = {}
    (tree.html / "thumbs").mkdir(parents=True, exist_ok=True)
    for r in results:
        if r.status != "ok" or "image_pbcor_subim" not in r.images:
            continue
        a = decimated(tree.abs(r.images["image_pbcor_subim"]))
        rms = r.qa.get("VLASSRMS") or float(np.nanstd(a[:, :, 0, 0]))
        names = []
        for k, s in enumerate("IQUV"):
            fig, ax = plt.subplots(figsize=(2.2, 2.2))
            ax.imshow(a[:, :, k, 0].T, origin="lower", cmap="inferno", vmin=-5 * rms, vmax=20 * rms)
            ax.set_axis_off()
            ax.set_title(f"{r.label} {s}", fontsize=7)
            name = naming.thumbnail(r.label, s)
            fig.savefig(tree.html / name, dpi=70, bbox_inches="tight")
            plt.close(fig)
            names.append(name)
        out[r.label] = names
    return out


def stokes_plots(tree: RunTree, out: dict) -> list[str]:
    """Stage 11's plots (spec §8.3) in html/stage11/, from its data; paths relative to html/."""
    plt = _pyplot()
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
    return sorted(str(p.relative_to(tree.html)) for p in d.glob("*.png"))


def _rms_plot(out: dict, d, plt) -> None:
    """rms_Median_vs_freq.png: median rms per Stokes vs frequency with the normalised S-band SEFD (§8.3)."""
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
    scale = out.get("sefd_scale")
    t = sefd.table(float(f.mean()))
    if scale is not None and t is not None:
        ax.plot(t[:, 0] / 1e3, t[:, 1] * scale * 1e3, color="0.5", label="SEFD_norm")
    ax.set(xlim=(1.9, 4.1), xlabel="Frequency [GHz]", ylabel="median rms [mJy/beam]")
    ax.legend(fontsize=6)
    fig.savefig(d / "rms_Median_vs_freq.png", dpi=80)
    plt.close(fig)
