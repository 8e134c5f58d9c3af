"""The plots NRAO's weblog judges planes by (spec §3.3, §4.3, §7), drawn from the stages' data:

- :func:`flag_summary` (stage 6): ``vlass_flagsummary_field_spwgroup.png``, the flagged percentage
  per field (rows) and spw group (columns) in the 1 deg² box; rejected groups labelled "(r)" in red;
- :func:`beams` (stage 7): ``beams_vlasscube.png``, restoring beam against frequency with the
  expected-beam ±δ rejection band, and the flagged percentage per plane with its threshold;
- :func:`mad_rms` (stage 10): ``image_MADrms_vs_freq.png``, the MAD-rms per Stokes of each cutout
  against frequency with the normalised S-band SEFD, and ``rms_Median_vs_freq.png``, the median of
  the rms images (the same overlay).

Each returns the paths written (relative to html/); the weblog leaves out what it cannot draw.
"""
from __future__ import annotations

import numpy as np

from ..heuristics import planes as planesmod, sefd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def flag_summary(html, tg: dict) -> list[str]:
    ff = tg.get("flag_by_field")
    if not ff or not ff.get("field_ids"):
        return []
    plt = _plt()
    a = np.array([[np.nan if v is None else 100 * v for v in row] for row in ff["fraction"]], float)
    rejected = set(tg.get("rejected_nfield", [])) | set(tg.get("skipped_flagged", []))
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(ff["groups"]), 1.5 + 0.22 * len(ff["field_ids"])))
    im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set_xticks(range(len(ff["groups"])))
    ax.set_xticklabels([g + (" (r)" if g in rejected else "") for g in ff["groups"]], rotation=30, ha="right",
                       fontsize=7)
    for lab, g in zip(ax.get_xticklabels(), ff["groups"]):
        if g in rejected:
            lab.set_color("red")
    ax.set_yticks(range(len(ff["field_ids"])))
    ax.set_yticklabels([str(f) for f in ff["field_ids"]], fontsize=6)
    ax.set(xlabel="spw group", ylabel="field id", title=f"flagged % per field (> {100 * ff['flagpct_thresh']:.0f}% "
                                                           f"in ≥ {ff['nfield_thresh']} fields: rejected)")
    ax.title.set_fontsize(8)
    fig.colorbar(im, ax=ax, label="flagged [%]")
    name = "stage6/vlass_flagsummary_field_spwgroup.png"
    (html / "stage6").mkdir(parents=True, exist_ok=True)
    fig.savefig(html / name, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return [name]


def beams(html, planes: list[dict], settings: dict | None = None) -> list[str]:
    if not planes:
        return []
    plt = _plt()
    s = {**planesmod.PLANE_REJECT_IM, **(settings or {})}
    d = float(s["beamdev_thresh"])
    pl = sorted(planes, key=lambda p: p["freq"])
    f = np.array([p["freq"] for p in pl]) / 1e9
    keep = np.array([p["keep"] for p in pl], bool)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for key, col, lab in (("bmaj", "C0", "major"), ("bmin", "C1", "minor")):
        y = np.array([p[key] for p in pl])
        e = np.array([p.get("expected_" + key) or np.nan for p in pl])
        ax.plot(f, e, "-", color=col, lw=0.8, label=f"expected {lab}")
        ax.fill_between(f, e * (1 - d), e * (1 + d), color=col, alpha=0.15, label=f"±{100 * d:.0f}% band")
        ax.plot(f[keep], y[keep], "o", color=col, label=f"{lab} (kept)")
        ax.plot(f[~keep], y[~keep], "x", color="red", ms=9, label=f"{lab} (rejected)" if (~keep).any() else None)
    for p, x in zip(pl, f):
        ax.annotate(p["group"], (x, p["bmaj"]), fontsize=6, xytext=(2, 4), textcoords="offset points")
    ax.set(ylabel="beam FWHM [arcsec]", title="restoring beam vs frequency (PIPE-1800 plane rejection)")
    ax.legend(fontsize=6, ncol=2)
    fp = np.array([100 * p["flagpct"] for p in pl])
    width = 0.6 * (np.min(np.diff(f)) if len(f) > 1 else 0.1)
    ax2.bar(f, fp, width=width, color=["C2" if k else "red" for k in keep])
    ax2.axhline(100 * float(s["flagpct_thresh"]), color="k", ls="--", lw=0.8,
                label=f"threshold {100 * float(s['flagpct_thresh']):.0f}%")
    ax2.set(xlabel="frequency [GHz]", ylabel="flagged [%]", ylim=(0, 100))
    ax2.legend(fontsize=6)
    name = "stage7/beams_vlasscube.png"
    (html / "stage7").mkdir(parents=True, exist_ok=True)
    fig.savefig(html / name, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return [name]


def _sefd_overlay(ax, freq_hz, rms_quv) -> None:
    scale = sefd.normalisation(freq_hz, rms_quv)
    t = sefd.table(float(np.mean(freq_hz)))
    if scale is not None and t is not None:
        ax.plot(t[:, 0] / 1e3, t[:, 1] * scale * 1e3, color="0.5", label="SEFD_norm")


def mad_rms(html, rows: list[dict]) -> list[str]:
    """rows: per plane {group, freq_hz, keep, madrms: {I..V}, rms_median: {I..V}} (Jy/beam)."""
    if not rows:
        return []
    plt = _plt()
    rows = sorted(rows, key=lambda r: r["freq_hz"])
    f = np.array([r["freq_hz"] for r in rows])
    kp = np.array([r["keep"] for r in rows], bool)
    out = []
    (html / "stage10").mkdir(parents=True, exist_ok=True)
    for key, name, ylab in (("madrms", "image_MADrms_vs_freq.png", "image MAD-rms [mJy/beam]"),
                            ("rms_median", "rms_Median_vs_freq.png", "median of rms image [mJy/beam]")):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for k, st in enumerate("IQUV"):
            y = np.array([(r.get(key) or {}).get(st, np.nan) for r in rows], float) * 1e3
            ax.plot(f[kp] / 1e9, y[kp], "-", color=f"C{k}", label=st)
            ax.plot(f / 1e9, y, "o", mfc="none", color=f"C{k}")
            if st == "I":
                for r, yy in zip(rows, y):
                    ax.annotate(r["group"], (r["freq_hz"] / 1e9, yy), fontsize=6)
        _sefd_overlay(ax, f, [[(r.get(key) or {}).get(s, np.nan) for s in "QUV"] for r in rows])
        ax.set(xlim=(1.9, 4.1), xlabel="frequency [GHz]", ylabel=ylab)
        ax.legend(fontsize=6)
        fig.savefig(html / "stage10" / name, dpi=90, bbox_inches="tight")
        plt.close(fig)
        out.append(f"stage10/{name}")
    return out
