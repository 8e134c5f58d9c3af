"""hif_editimlist, twice (spec §1 stage 2 and §3).

- :func:`run_seip` (stage 2): the single VLASS-SE-CONT target of ``SEIP_parameter.list``
  with its stage-1 heuristics; restorepims predicts the SE model with it.
- :func:`run_ccip` (stage 6, ``editmode='replace'``): one :class:`ImagingTarget` per spw
  group of ``CCIP_parameter.list`` (or the run's override): validated groups, imagename
  suffix, reffreq = mean of the spws' mean frequencies, box field selection, the
  100 %-flagged skip and the PIPE-1800 nfield rejection, the masks from restorepims.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .. import casa_env, paramlist
from ..heuristics import fields as fieldsel
from ..heuristics import se
from ..model import CcipInputError, ImagingTarget
from ..runtree import RunTree

log = logging.getLogger("ccip")
STAGE_PREFIX = "s7_0."  # hif_makeimages is stage 7 of the CCIP recipe
DEFAULT_GROUPS = [str(s) for s in range(2, 18)]
PLANE_REJECT_MS = {"apply": True, "exclude_spw": "", "flagpct_thresh": 0.9, "nfield_thresh": 12}


def _required(params: dict, key: str, path: Path):
    if key not in params:
        raise CcipInputError(f"{path}: required parameter {key!r} is missing")
    return params[key]


def _imsize(v) -> list[int]:
    """12500, [12500] or [12500, 12500] -> [12500, 12500]."""
    v = [v] if isinstance(v, int) else list(v)
    return [int(v[0]), int(v[-1])]


def _cell(v) -> str:
    return v if isinstance(v, str) else v[0]


def run_seip(tree: RunTree, vis_rel: str | None = None) -> dict:
    path = tree.working / "SEIP_parameter.list"
    p = paramlist.parse(path)
    target = {
        "imaging_mode": p.get("imaging_mode", "VLASS-SE-CONT"),
        "imagename": _required(p, "imagename", path),
        "phasecenter": _required(p, "phasecenter", path),
        "imsize": _imsize(p.get("imsize", 12500)),
        "cell": _cell(p.get("cell", "0.6arcsec")),
        "spw": spw if isinstance(spw := p.get("spw", "2~17"), str) else ",".join(spw),
        "search_radius_arcsec": float(p.get("search_radius_arcsec", fieldsel.DEFAULT_BUFFER_ARCSEC)),
        "heuristics": se.STAGE1,  # stage-1 VLASS-SE heuristics (vlass_stage = 1), for the record
    }
    if "awproject" in target["imaging_mode"].lower() or "AWP" in target["imaging_mode"]:
        raise CcipInputError(f"{path}: imaging_mode {target['imaging_mode']!r} needs awproject/cfcache; "
                             "this pipeline restores mosaic-gridder SE products only")
    (tree.working / "seip_target.json").write_text(json.dumps(target, indent=1))
    return target


def group_label(group: str) -> str:
    return "spw" + group.replace(",", "_").replace("~", "-")


def flag_fractions(vis: str, field_ids: list[int], spws: list[int]) -> tuple[dict, dict]:
    """Per field and spw: (flagged, total) from flagdata summary with fieldcnt."""
    tk = casa_env.tasks()
    s = tk.flagdata(vis=vis, mode="summary", fieldcnt=True)
    ct = casa_env.tools()
    msmd = ct.msmetadata()
    msmd.open(vis)
    names = {fid: msmd.namesforfields(fid)[0] for fid in field_ids}
    msmd.close()
    flagged, total = {}, {}
    for fid, name in names.items():
        rec = s.get(name, {})
        spwrec = rec.get("spw", {})
        for spw in spws:
            r = spwrec.get(str(spw), {"flagged": 0.0, "total": 0.0})
            flagged[(fid, spw)] = float(r["flagged"])
            total[(fid, spw)] = float(r["total"])
    return flagged, total


def run_ccip(tree: RunTree, vis_rel: str, masks: list[str], spw_override: list[str] | None = None,
             overrides: dict | None = None) -> list[ImagingTarget]:
    path = tree.working / "CCIP_parameter.list"
    p = paramlist.parse(path)
    mode = p.get("imaging_mode", "VLASS-SE-CUBE")
    if mode != "VLASS-SE-CUBE":
        raise CcipInputError(f"{path}: imaging_mode must be 'VLASS-SE-CUBE', got {mode!r}")
    imagename = _required(p, "imagename", path)
    phasecenter = _required(p, "phasecenter", path)
    if spw_override:
        groups = paramlist.validate_spw_groups(spw_override, "run parameter spw_groups")
    else:
        groups = paramlist.validate_spw_groups(p.get("spw", DEFAULT_GROUPS), f"{path}: spw")
    vis = str(tree.abs(vis_rel))
    ct = casa_env.tools()
    msmd = ct.msmetadata()
    msmd.open(vis)
    all_spws = set(range(msmd.nspw()))
    msmd.close()
    for g in groups:
        missing = [s for s in map(int, g.split(",")) if s not in all_spws]
        if missing:
            raise CcipInputError(f"spw group {g!r}: spw {missing} not in the MeasurementSet {vis_rel}")
    buffer = float(p.get("search_radius_arcsec", fieldsel.DEFAULT_BUFFER_ARCSEC))
    field_ids = fieldsel.box_fields(vis, phasecenter, fieldsel.CUTOUT_HALF_ARCSEC + buffer)
    if not field_ids:
        raise CcipInputError(f"no field of {vis_rel} lies within {fieldsel.CUTOUT_HALF_ARCSEC + buffer:.0f} arcsec "
                             f"of phasecenter {phasecenter!r}")
    box_ids = fieldsel.box_fields(vis, phasecenter, fieldsel.CUTOUT_HALF_ARCSEC)
    spws_used = sorted({int(s) for g in groups for s in g.split(",")})
    flagged, total = flag_fractions(vis, box_ids, spws_used)
    reject = dict(PLANE_REJECT_MS)
    vr = p.get("vlass_plane_reject_ms", True)
    if isinstance(vr, dict):
        reject.update(vr)
    elif vr is False:
        reject["apply"] = False
    exclude = {int(s) for s in str(reject["exclude_spw"]).split(",") if s.strip().isdigit()}
    meanfreq = fieldsel.spw_mean_freqs(vis, spws_used)
    ov = dict(overrides or {})
    imsize = _imsize(ov.pop("imsize", p.get("imsize", 12500)))
    cell = _cell(ov.pop("cell", p.get("cell", "0.6arcsec")))
    tclean_keys = ("niter", "cycleniter", "cyclefactor", "nmajor", "robust", "uvtaper", "uvrange",
                   "threshold", "nsigma", "pblimit", "pbmask", "scales", "psfcutoff", "smallscalebias",
                   "cycleniter_final_image_nomask", "datacolumn", "stokes", "gridder", "deconvolver", "nterms")
    tclean_overrides = {k: p[k] for k in tclean_keys if k in p}
    tclean_overrides.update(ov)
    targets, rejected, skipped = [], [], []
    for g in groups:
        spws = [int(s) for s in g.split(",")]
        fl = sum(flagged[(f, s)] for f in box_ids for s in spws)
        tot = sum(total[(f, s)] for f in box_ids for s in spws)
        frac = fl / tot if tot else 1.0
        nfield_above = sum(
            1 for f in box_ids
            if (sum(total[(f, s)] for s in spws) and
                sum(flagged[(f, s)] for s in spws) / sum(total[(f, s)] for s in spws) > reject["flagpct_thresh"]))
        if reject["apply"] and nfield_above >= reject["nfield_thresh"] and not (set(spws) & exclude):
            rejected.append(g)
            continue
        if frac >= 1.0:
            log.warning("VLASS Data for spw=%s is %.2f%% flagged, and we will skip it as an imaging target.",
                        g, 100 * frac)
            skipped.append(g)
            continue
        reffreq_hz = float(np.mean([meanfreq[s] for s in spws]))
        label = group_label(g)
        targets.append(ImagingTarget(
            group=g, spws=spws, label=label, imagename=f"{STAGE_PREFIX}{imagename}.{label}",
            reffreq_hz=reffreq_hz, reffreq=f"{reffreq_hz / 1e9!r}GHz", imsize=imsize, cell=cell,
            phasecenter=phasecenter, field_ids=field_ids, vis=vis_rel, masks=list(masks) + ["pb"],
            flagpct=frac, imaging_mode=mode, tclean_overrides=tclean_overrides))
    if rejected:
        log.warning("spw groups %s rejected: %d or more fields are more than %.0f%% flagged",
                    rejected, reject["nfield_thresh"], 100 * reject["flagpct_thresh"])
    summary = {"targets": [t.to_json() for t in targets], "skipped_flagged": skipped,
               "rejected_nfield": rejected, "groups": groups, "parameter_file": "CCIP_parameter.list"}
    (tree.working / "ccip_targets.json").write_text(json.dumps(summary, indent=1))
    if not targets:
        raise CcipInputError(f"no spw group left to image: skipped (100% flagged) {skipped}, "
                             f"rejected (nfield) {rejected}")
    return targets
