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

Reads (bounded memory at VLASS size, 16 planes of 6200² IQUV cutouts): each plane's cutouts are read
one Stokes plane at a time for the blank check and the median rms, several planes at once in
separate processes (:func:`plane_summary`, ``workers``); the peak search reads the I, Q, U planes of
the lowest-frequency cutout and the two masks only inside the cutout box; the per-region values read
only the box around the region. No plane's whole cube is kept.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from .. import casaimage, groupworkers, naming
from ..exceptions import NothingLeftError
from ..heuristics import sefd
from ..heuristics.spectra import fit_power_law, fit_rm, point_source_peak, snr_gate
from ..model import ImagingResult, Plane
from ..runtree import RunTree, write_json

log = logging.getLogger("ccip")


def _plane(ia, k: int, box=None) -> np.ndarray:
    """Stokes plane ``k`` (first channel) of an open image, or its x/y box (blcx, blcy, trcx, trcy)."""
    nx, ny = ia.shape()[:2]
    b = box or (0, 0, nx - 1, ny - 1)
    return ia.getchunk(blc=[b[0], b[1], k, 0], trc=[b[2], b[3], k, 0])[:, :, 0, 0]


def _mask_plane(tree: RunTree, res: ImagingResult, kind: str, iteration: int) -> np.ndarray | None:
    """The mask inside the group's cutout box (read from the whole-image mask only there)."""
    p = tree.working / res.target.names.name(kind, iteration)
    if not p.exists():
        log.warning("mask %s is missing: not used in the peak search", p.name)
        return None
    with casaimage.opened(p) as ia:
        m = _plane(ia, 0, res.qa.get("cutout_box"))
    return m > 0.5


def plane_summary(pbcor: str, rms: str) -> dict:
    """What the analysis needs of one plane's whole cutouts, read one Stokes plane at a time (memory
    bounded by one plane, whatever the number of groups): blank or not, the median rms per Stokes."""
    blank = True
    with casaimage.opened(pbcor) as ia:
        for k in range(ia.shape()[2]):
            a = _plane(ia, k)
            if np.isfinite(a).any() and np.nanmax(np.abs(a)) != 0:
                blank = False
                break
    if blank:
        return {"blank": True}
    with casaimage.opened(rms) as ia:  # over the unmasked pixels, as VLASSRMS: one Stokes plane at a time
        med = {}
        for k, s in enumerate("IQUV"):
            nx, ny = ia.shape()[:2]
            good = ia.getchunk(blc=[0, 0, k, 0], trc=[nx - 1, ny - 1, k, 0], getmask=True)
            med.update(masked_medians(_plane(ia, k)[:, :, None, None], good, "IQUV"[k]))
        return {"blank": False, "rms_median": med}


def _window(path, x: int, y: int, h: int) -> tuple[np.ndarray, int, int]:
    """The IQUV pixels of the box of half-width ``h`` around (x, y) (clipped at the edges), and its blc."""
    with casaimage.opened(path) as ia:
        nx, ny = ia.shape()[:2]
        x0, y0 = max(x - h, 0), max(y - h, 0)
        a = ia.getchunk(blc=[x0, y0, 0, 0], trc=[min(x + h, nx - 1), min(y + h, ny - 1), 3, 0])
    return a, x0, y0


def analyze_stokes(tree: RunTree, results: tuple[ImagingResult, ...], planes: tuple[Plane, ...],
                   workers: int = 1) -> dict:
    keep_of = {p.group: p.keep for p in planes}
    ok = [r for r in results if r.status == "ok" and r.images.get("image_pbcor_subim")]
    usable = []
    for r in ok:
        path, rms_path = tree.abs(r.images["image_pbcor_subim"]), tree.abs(r.images["rms_subim"])
        if not path.exists():
            log.warning("pbcor cutout of spw group %s is missing (%s): plane skipped", r.target.group, path.name)
        elif not rms_path.exists():
            log.warning("rms cutout of spw group %s is missing (%s): plane skipped", r.target.group, rms_path.name)
        else:
            usable.append((r, path, rms_path))
    cubes = []  # (result, pbcor cutout, rms cutout, rms medians): paths, no pixels
    for (r, path, rms_path), (done, info) in zip(usable, groupworkers.parallel_map(
            plane_summary, [(str(p), str(q)) for _, p, q in usable], workers)):
        if not done:
            raise groupworkers.failure(info, f"reading the cutouts of spw group {r.target.group}: {info}")
        if info["blank"]:
            log.warning("pbcor cutout of spw group %s is blank (%s): plane skipped", r.target.group, path.name)
            continue
        cubes.append((r, path, rms_path, info["rms_median"]))
    if not cubes:
        raise NothingLeftError("no usable pbcor cutout: nothing to analyse")
    cubes.sort(key=lambda c: c[0].target.reffreq_hz)
    low, high = cubes[0], cubes[-1]
    m2 = _mask_plane(tree, high[0], "cleanmask", 2)
    m3 = _mask_plane(tree, high[0], "mask", 3)
    with casaimage.opened(low[1]) as ia:
        I, Q, U = (_plane(ia, k) for k in range(3))
    search = np.ones(I.shape, bool)
    for m in (m2, m3):
        if m is not None and m.shape == search.shape:
            search &= m
    del m2, m3
    if not search.any():
        log.warning("peak-search mask is empty: searching the whole cutout")
        search[:] = True
    lpi = np.hypot(Q, U)
    del Q, U
    rois = {}
    for name, plane in (("peak_stokesi", I), ("peak_linpolint", lpi)):
        x, y = np.unravel_index(np.nanargmax(np.where(search, plane, -np.inf)), plane.shape)
        rois[name] = {"x": int(x), "y": int(y)}
    del I, lpi, search
    with casaimage.opened(low[1]) as ia:
        cs = ia.coordsys()
    for roi in rois.values():
        w = cs.toworld([roi["x"], roi["y"], 0, 0])["numeric"]
        roi["ra_deg"], roi["dec_deg"] = math.degrees(w[0]) % 360, math.degrees(w[1])
    cell_arcsec = abs(math.degrees(cs.increment(format="n", type="direction")["numeric"][0])) * 3600
    cs.done()
    out = {"regions": {}, "planes": [], "cell_arcsec": cell_arcsec}
    for r, _, _, rms_median in cubes:
        out["planes"].append({"group": r.target.group, "freq_hz": r.target.reffreq_hz,
                              "keep": keep_of.get(r.target.group, True),
                              "rms_median": rms_median,
                              "beam": r.beam.to_json() if r.beam else {},
                              "beam_area_arcsec2": r.beam.area_arcsec2 if r.beam else 0.0})
    for name, roi in rois.items():
        rows = []
        x, y = roi["x"], roi["y"]
        for (r, path, rms_path, _), pl in zip(cubes, out["planes"]):
            beam = r.beam.to_json() if r.beam else {}
            h = max(2, int(math.ceil(beam["bmaj"] / cell_arcsec))) if beam.get("bmaj") else 1
            a, x0, y0 = _window(path, x, y, h)  # the fit's window (point_source_peak) holds the 3x3 box
            rms, rx0, ry0 = _window(rms_path, x, y, 1)
            sl = (slice(max(x - 1, 0) - x0, x + 2 - x0), slice(max(y - 1, 0) - y0, y + 2 - y0))
            rsl = (slice(max(x - 1, 0) - rx0, x + 2 - rx0), slice(max(y - 1, 0) - ry0, y + 2 - ry0))
            vals = {s: float(np.mean(a[sl][:, :, k, 0])) for k, s in enumerate("IQUV")}
            rows.append({**vals, "group": pl["group"], "freq_hz": pl["freq_hz"], "keep": pl["keep"],
                         "I_point": point_source_peak(a[:, :, 0, 0], x - x0, y - y0, beam, cell_arcsec),
                         "rms_I": float(np.mean(rms[rsl][:, :, 0, 0])),
                         "rms_Q": float(np.mean(rms[rsl][:, :, 1, 0])), "rms_U": float(np.mean(rms[rsl][:, :, 2, 0]))})
        out["regions"][name] = {**roi, "measurements": rows, **region_fits(rows)}
    pl = out["planes"]
    if pl:
        scale = sefd.normalisation([p["freq_hz"] for p in pl], [[p["rms_median"][s] for s in "QUV"] for p in pl])
        if scale is not None and sefd.table(float(np.mean([p["freq_hz"] for p in pl]))) is not None:
            out["sefd_scale"] = scale
    write_json(tree.stage_data("analyzestokes"), out)
    write_table(out, tree.working / naming.ANALYSIS_TABLE)
    return out


def masked_medians(rms: np.ndarray, mask: np.ndarray, stokes: str = "IQUV") -> dict:
    """Median per Stokes of the rms image over its unmasked (good) finite pixels, as VLASSRMS
    (``rms``/``mask`` hold the Stokes planes named by ``stokes``, in that order)."""
    return {s: float(np.median(v)) if (v := rms[:, :, k, 0][mask[:, :, k, 0] & np.isfinite(rms[:, :, k, 0])]).size
            else float("nan") for k, s in enumerate(stokes)}


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
