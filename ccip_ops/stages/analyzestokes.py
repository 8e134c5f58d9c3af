"""hifv_analyzestokescubes (stage 11, spec §8), plus a rotation-measure fit.

Two regions: the Stokes-I peak and the linearly polarised intensity peak, searched in the
lowest-frequency pbcor cutout inside the intersection of the highest-frequency plane's
iter2 clean mask and iter3 pb mask. Per plane and region: 3x3-pixel box means of I, Q, U,
V, the Stokes-I rms at the region, the median rms per Stokes over the rms image's unmasked
pixels (the pixels VLASSRMS is the median of), beam area, keep flag. Then a power-law fit of
I(ν) at 3 GHz with α and their errors, weighted by the plane noise at the region: of the box
means ("box α", NRAO's) and, added here, of the peaks of a restoring-beam fit ("beam-fit α",
unbiased by the beam shrinking with frequency); and, at each region, a fit of the polarisation
angle against λ² over the kept planes giving RM and the intrinsic angle with uncertainties from
the plane noise (the fits: :mod:`ccip_ops.heuristics.spectra`). S/N gates: α is headlined only
where the Stokes-I S/N at the region (median over kept planes) reaches
:data:`~ccip_ops.heuristics.spectra.SNR_GATE`, RM only where the polarised S/N does; a region
below its gate keeps its fit in the data but says "below the S/N gate". The results are also
``working/stokes_analysis.ecsv`` (one row per region and plane, the fits in its meta), which
export delivers to ``products/``. Entry point :func:`analyze_stokes`; the result is the stage's
data (its plots are drawn by the weblog). A plane whose cutout is missing or blank is skipped
with a warning naming it; with no usable plane the stage fails (NothingLeftError).
"""
from __future__ import annotations

import logging
import math

import numpy as np

from .. import casaimage, naming
from ..exceptions import NothingLeftError
from ..heuristics import sefd
from ..heuristics.spectra import fit_power_law, fit_rm, point_source_peak, snr_gate
from ..model import ImagingResult, Plane
from ..runtree import RunTree, write_json

log = logging.getLogger("ccip")


def _read(path, stokes_i_only=False):
    a = casaimage.pixels(path)
    return a[:, :, 0, 0] if stokes_i_only else a


def _mask_plane(tree: RunTree, res: ImagingResult, kind: str, iteration: int) -> np.ndarray | None:
    p = tree.working / res.target.names.name(kind, iteration)
    if not p.exists():
        log.warning("mask %s is missing: not used in the peak search", p.name)
        return None
    m = _read(p, stokes_i_only=True)
    box = res.qa.get("cutout_box")
    if box:
        m = m[box[0]:box[2] + 1, box[1]:box[3] + 1]
    return m > 0.5


def analyze_stokes(tree: RunTree, results: tuple[ImagingResult, ...], planes: tuple[Plane, ...]) -> dict:
    keep_of = {p.group: p.keep for p in planes}
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
        cubes.append((r, a, _read(rms_path), casaimage.pixels(rms_path, getmask=True)))
    if not cubes:
        raise NothingLeftError("no usable pbcor cutout: nothing to analyse")
    cubes.sort(key=lambda c: c[0].target.reffreq_hz)
    low, high = cubes[0], cubes[-1]
    m2 = _mask_plane(tree, high[0], "cleanmask", 2)
    m3 = _mask_plane(tree, high[0], "mask", 3)
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
    with casaimage.opened(tree.abs(low[0].images["image_pbcor_subim"])) as ia:
        cs = ia.coordsys()
    for roi in rois.values():
        w = cs.toworld([roi["x"], roi["y"], 0, 0])["numeric"]
        roi["ra_deg"], roi["dec_deg"] = math.degrees(w[0]) % 360, math.degrees(w[1])
    cell_arcsec = abs(math.degrees(cs.increment(format="n", type="direction")["numeric"][0])) * 3600
    cs.done()
    out = {"regions": {}, "planes": [], "cell_arcsec": cell_arcsec}
    for r, a, rms, rms_mask in cubes:
        out["planes"].append({"group": r.target.group, "freq_hz": r.target.reffreq_hz,
                              "keep": keep_of.get(r.target.group, True),
                              "rms_median": masked_medians(rms, rms_mask),
                              "beam": r.beam.to_json() if r.beam else {},
                              "beam_area_arcsec2": r.beam.area_arcsec2 if r.beam else 0.0})
    for name, roi in rois.items():
        rows = []
        x, y = roi["x"], roi["y"]
        for (r, a, rms, _), pl in zip(cubes, out["planes"]):
            sl = (slice(max(x - 1, 0), x + 2), slice(max(y - 1, 0), y + 2))
            vals = {s: float(np.mean(a[sl][:, :, k, 0])) for k, s in enumerate("IQUV")}
            rows.append({**vals, "group": pl["group"], "freq_hz": pl["freq_hz"], "keep": pl["keep"],
                         "I_point": point_source_peak(a[:, :, 0, 0], x, y, r.beam.to_json() if r.beam else {},
                                                      cell_arcsec),
                         "rms_I": float(np.mean(rms[sl][:, :, 0, 0])),
                         "rms_Q": float(np.mean(rms[sl][:, :, 1, 0])), "rms_U": float(np.mean(rms[sl][:, :, 2, 0]))})
        f = np.array([r_["freq_hz"] for r_ in rows])
        keep = np.array([r_["keep"] for r_ in rows])
        out["regions"][name] = {**roi, "measurements": rows, **region_fits(rows)}
    pl = out["planes"]
    if pl:
        scale = sefd.normalisation([p["freq_hz"] for p in pl], [[p["rms_median"][s] for s in "QUV"] for p in pl])
        if scale is not None and sefd.table(float(np.mean([p["freq_hz"] for p in pl]))) is not None:
            out["sefd_scale"] = scale
    write_json(tree.stage_data("analyzestokes"), out)
    write_table(out, tree.working / naming.ANALYSIS_TABLE)
    return out


def masked_medians(rms: np.ndarray, mask: np.ndarray) -> dict:
    """Median per Stokes of the rms image over its unmasked (good) finite pixels, as VLASSRMS."""
    return {s: float(np.median(v)) if (v := rms[:, :, k, 0][mask[:, :, k, 0] & np.isfinite(rms[:, :, k, 0])]).size
            else float("nan") for k, s in enumerate("IQUV")}


def region_fits(rows: list[dict]) -> dict:
    """The fits of one region over its per-plane rows, with their S/N gates."""
    f = np.array([r["freq_hz"] for r in rows])
    keep = np.array([r["keep"] for r in rows], bool)
    I, rms_i = np.array([r["I"] for r in rows]), np.array([r["rms_I"] for r in rows])
    q, u = np.array([r["Q"] for r in rows]), np.array([r["U"] for r in rows])
    sig_qu = np.array([0.5 * (r["rms_Q"] + r["rms_U"]) for r in rows])
    ip = np.array([np.nan if r["I_point"] is None else r["I_point"] for r in rows])
    for r, p, s in zip(rows, np.hypot(q, u), sig_qu):
        r["P"], r["P_snr"], r["I_snr"] = float(p), float(p / s) if s > 0 else float("nan"), \
            float(r["I"] / r["rms_I"]) if r["rms_I"] > 0 else float("nan")
    return {"power_law": fit_power_law(f / 1e9, I, keep, rms_i),
            "power_law_point_source": fit_power_law(f / 1e9, ip, keep & np.isfinite(ip), rms_i),
            "rotation_measure": fit_rm(f, q, u, sig_qu, keep),
            "gate_alpha": snr_gate(I, rms_i, keep), "gate_rm": snr_gate(np.hypot(q, u), sig_qu, keep)}


def write_table(out: dict, path) -> None:
    """The analysis as ECSV (TOPCAT, astropy): one row per region and plane; fits in the meta."""
    from astropy.table import Table

    cols = ("group", "freq_hz", "keep", "I", "Q", "U", "V", "rms_I", "rms_Q", "rms_U", "I_point", "P", "P_snr",
            "I_snr")
    units = {"freq_hz": "Hz", **{c: "Jy/beam" for c in ("I", "Q", "U", "V", "rms_I", "rms_Q", "rms_U", "I_point",
                                                          "P")}}
    rows, meta = [], {}
    for name, reg in out["regions"].items():
        for m in reg["measurements"]:
            rows.append([name, reg["ra_deg"], reg["dec_deg"], reg["x"], reg["y"]]
                        + [np.nan if m.get(c) is None else m[c] for c in cols])
        meta[name] = {k: reg[k] for k in ("power_law", "power_law_point_source", "gate_alpha", "gate_rm")}
        rm = reg.get("rotation_measure")
        meta[name]["rotation_measure"] = None if rm is None else \
            {k: v for k, v in rm.items() if k not in ("lambda2_m2", "chi_rad")}
    t = Table(rows=rows, names=("region", "ra_deg", "dec_deg", "x_pix", "y_pix") + cols, meta=meta)
    for c, unit in {"ra_deg": "deg", "dec_deg": "deg", **units}.items():
        t[c].unit = unit
    t.meta["comments"] = ["hifv_analyzestokescubes: 3x3-pixel box means of the pbcor cutouts per region and plane",
                          "I_point: peak of a restoring-beam Gaussian fit; P = sqrt(Q^2+U^2) (not debiased)",
                          "power_law: box alpha (NRAO's); power_law_point_source: beam-fit alpha"]
    tmp = path.with_name(path.name + ".tmp")
    t.write(tmp, format="ascii.ecsv", overwrite=True)
    tmp.replace(path)


def _fmt_alpha(pw: dict | None) -> str:
    if not pw:
        return "n/a"
    err = pw.get("alpha_err")
    return f"{pw['alpha']:.2f}" + (f" ± {err:.2f}" if err is not None and np.isfinite(err) else "")


def notes(out: dict) -> str:
    """The stage's headline: RM and α only where their region clears the S/N gate."""
    parts = []
    pol = out["regions"].get("peak_linpolint") or {}
    g, rm = pol.get("gate_rm") or {}, pol.get("rotation_measure")
    if rm and g.get("passed"):
        parts.append(f"RM at the polarised peak: {rm['rm_rad_m2']:.1f} ± {rm['rm_err']:.1f} rad/m²")
    elif pol:
        parts.append(f"polarised peak below the S/N gate (P/σ {g.get('snr', float('nan')):.1f} < "
                     f"{g.get('threshold', 0):.0f}): no RM")
    st = out["regions"].get("peak_stokesi") or {}
    g = st.get("gate_alpha") or {}
    if st and g.get("passed"):
        parts.append(f"spectral index at the Stokes-I peak: box α (NRAO) {_fmt_alpha(st.get('power_law'))}, "
                     f"beam-fit α {_fmt_alpha(st.get('power_law_point_source'))}")
    elif st:
        parts.append(f"Stokes-I peak below the S/N gate (I/σ {g.get('snr', float('nan')):.1f}): no spectral index")
    return "; ".join(parts)
