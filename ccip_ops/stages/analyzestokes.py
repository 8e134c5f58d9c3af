"""hifv_analyzestokescubes (stage 11, spec §8), plus a rotation-measure fit.

Two regions: the Stokes-I peak and the linearly polarised intensity peak, searched in the
lowest-frequency pbcor cutout inside the intersection of the highest-frequency plane's
iter2 clean mask and iter3 pb mask. Per plane and region: 3x3-pixel box means of I, Q, U,
V, the Stokes-I rms at the region, the median rms per Stokes, beam area, keep flag. Then a
power-law fit of I(ν) at 3 GHz (of the box means, as NRAO; and, added here, of the peaks of a
restoring-beam fit) and, at each region, a fit of the polarisation angle against λ² over the
kept planes giving RM and the intrinsic angle with uncertainties from the plane noise (the fits:
:mod:`ccip_ops.heuristics.spectra`). Entry point :func:`analyze_stokes`; the result is the
stage's data (its plots are drawn by the weblog). A plane whose cutout is missing or blank is
skipped with a warning naming it; with no usable plane the stage fails (NothingLeftError).
"""
from __future__ import annotations

import logging
import math

import numpy as np

from .. import casaimage
from ..exceptions import NothingLeftError
from ..heuristics import sefd
from ..heuristics.spectra import fit_power_law, fit_rm, point_source_peak
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
        cubes.append((r, a, _read(rms_path)))
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
    for r, a, rms in cubes:
        out["planes"].append({"group": r.target.group, "freq_hz": r.target.reffreq_hz,
                              "keep": keep_of.get(r.target.group, True),
                              "rms_median": {s: float(np.nanmedian(rms[:, :, k, 0])) for k, s in enumerate("IQUV")},
                              "beam": r.beam.to_json() if r.beam else {},
                              "beam_area_arcsec2": r.beam.area_arcsec2 if r.beam else 0.0})
    for name, roi in rois.items():
        rows = []
        x, y = roi["x"], roi["y"]
        for (r, a, rms), pl in zip(cubes, out["planes"]):
            sl = (slice(max(x - 1, 0), x + 2), slice(max(y - 1, 0), y + 2))
            vals = {s: float(np.mean(a[sl][:, :, k, 0])) for k, s in enumerate("IQUV")}
            rows.append({**vals, "group": pl["group"], "freq_hz": pl["freq_hz"], "keep": pl["keep"],
                         "I_point": point_source_peak(a[:, :, 0, 0], x, y, r.beam.to_json() if r.beam else {},
                                                      cell_arcsec),
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
    pl = out["planes"]
    if pl:
        scale = sefd.normalisation([p["freq_hz"] for p in pl], [[p["rms_median"][s] for s in "QUV"] for p in pl])
        if scale is not None and sefd.table(float(np.mean([p["freq_hz"] for p in pl]))) is not None:
            out["sefd_scale"] = scale
    write_json(tree.stage_data("analyzestokes"), out)
    return out


def notes(out: dict) -> str:
    rm = (out["regions"].get("peak_linpolint") or {}).get("rotation_measure")
    pw = (out["regions"].get("peak_stokesi") or {}).get("power_law_point_source")
    return "; ".join(([f"RM at the polarised peak: {rm['rm_rad_m2']:.1f} ± {rm['rm_err']:.1f} rad/m²"] if rm else [])
                     + ([f"spectral index at the Stokes-I peak: {pw['alpha']:.2f}"] if pw else []))
