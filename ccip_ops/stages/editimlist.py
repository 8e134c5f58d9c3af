"""hif_editimlist, twice (spec §1 stage 2 and §3).

- :func:`seip_target` (stage 2): the single VLASS-SE-CONT target of ``SEIP_parameter.list``
  with the stage-1 heuristics of its imaging mode; restorepims predicts the SE model with it. A
  mode whose gridder restorepims cannot reproduce is refused here, naming the mode and the file.
- :func:`ccip_targets` (stage 6, ``editmode='replace'``): one :class:`ImagingTarget` per spw
  group of ``CCIP_parameter.list`` (or the run's override): validated groups, imagename
  suffix, reffreq = mean of the spws' mean frequencies, box field selection, the
  100 %-flagged skip and the PIPE-1800 nfield rejection, the masks from restorepims; each
  group's tclean memory is estimated first (:mod:`..heuristics.memory`) and a group that does
  not fit the worker (``CCIP_WORKER_MEMORY_GB``) refused before any work.

Both write their stage data (``RunTree.stage_data``) for the weblog; bad lists fail with
:class:`InputError` naming the file and the key.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import listvalues, msinfo, naming, paramlist, settings
from ..casatables import msmetadata
from ..exceptions import InputError, NothingLeftError, ResourceLimitError
from ..heuristics import fields as fieldsel
from ..heuristics import memory, se
from ..model import ImagingTarget, SeipTarget
from ..runtree import RunTree, read_json, write_json
from ._casa import Casa

log = logging.getLogger("ccip")
DEFAULT_GROUPS = paramlist.DEFAULT_SPW_GROUPS
PLANE_REJECT_MS = {"apply": True, "exclude_spw": "", "flagpct_thresh": 0.9, "nfield_thresh": 12}


def _required(params: dict, key: str, path: Path):
    if key not in params:
        raise InputError(f"{path}: required parameter {key!r} is missing")
    return params[key]


def _imsize(v) -> list[int]:
    """12500, [12500] or [12500, 12500] -> [12500, 12500] (checked: listvalues.imsize)."""
    return listvalues.imsize(v)


def _cell(v) -> str:
    return listvalues.cell(v)


def seip_target(tree: RunTree) -> SeipTarget:
    path = tree.working / "SEIP_parameter.list"
    p = paramlist.check_seip(path)  # as the first task did on the archive's copy
    spw = p.get("spw", "2~17")
    mode_name = p.get("imaging_mode", "VLASS-SE-CONT")
    try:  # refused by the gridder its heuristics (or the list) give, before any work
        mode = se.seip_mode(mode_name, p.get("gridder"), p.get("wprojplanes"))
    except se.UnrestorableMode as e:
        raise InputError(f"{path}: {e}") from None
    heur = {k: v for k, v in se.stage1_tclean("", "", [0, 0], "", "", mode).items()
            if k not in ("vis", "imagename", "imsize", "cell", "phasecenter")}
    if "conjbeams" in p and mode.awproject:
        heur["conjbeams"] = p["conjbeams"]
    target = SeipTarget(
        imaging_mode=mode_name,
        imagename=_required(p, "imagename", path),
        phasecenter=_required(p, "phasecenter", path),
        imsize=_imsize(p.get("imsize", mode.imsize)),
        cell=_cell(p.get("cell", "0.6arcsec")),
        spw=spw if isinstance(spw, str) else ",".join(spw),
        search_radius_arcsec=float(p.get("search_radius_arcsec", fieldsel.DEFAULT_BUFFER_ARCSEC)),
        heuristics=heur,  # stage-1 VLASS-SE heuristics of the mode (vlass_stage = 1)
        cfcache=str(p.get("cfcache", "")) if mode.awproject else "",
    )
    write_json(tree.stage_data("editimlist_seip"), target.to_json())
    return target


def flag_fractions(vis: str, field_ids: list[int], spws: list[int], casa: Casa) -> tuple[dict, dict]:
    """Per field and spw: (flagged, total) from flagdata summary with fieldcnt (logged in
    casa_commands.log by ``casa``)."""
    s = casa("flagdata", vis=vis, mode="summary", fieldcnt=True)
    with msmetadata(vis) as msmd:
        names = {fid: msmd.namesforfields(fid)[0] for fid in field_ids}
    flagged, total = {}, {}
    for fid, name in names.items():
        rec = s.get(name, {})
        spwrec = rec.get("spw", {})
        for spw in spws:
            r = spwrec.get(str(spw), {"flagged": 0.0, "total": 0.0})
            flagged[(fid, spw)] = float(r["flagged"])
            total[(fid, spw)] = float(r["total"])
    return flagged, total


def ccip_targets(tree: RunTree, vis_rel: str, masks: tuple[str, ...], spw_override: tuple[str, ...] | None = None,
                 overrides: dict | None = None) -> list[ImagingTarget]:
    path = tree.working / "CCIP_parameter.list"
    p = paramlist.check_ccip(path, spw_override)  # as the first task did on the archive's copy
    mode = p.get("imaging_mode", "VLASS-SE-CUBE")
    if mode != "VLASS-SE-CUBE":
        raise InputError(f"{path}: imaging_mode must be 'VLASS-SE-CUBE', got {mode!r}")
    imagename = _required(p, "imagename", path)
    phasecenter = _required(p, "phasecenter", path)
    if spw_override:
        groups = paramlist.validate_spw_groups(list(spw_override), "run parameter spw_groups")
    else:
        groups = paramlist.validate_spw_groups(p.get("spw", DEFAULT_GROUPS), f"{path}: spw")
    ov = dict(overrides or {})
    imsize = _imsize(ov.pop("imsize", p.get("imsize", 12500)))
    cell = _cell(ov.pop("cell", p.get("cell", "0.6arcsec")))
    tclean_keys = ("niter", "cycleniter", "cyclefactor", "nmajor", "robust", "uvtaper", "uvrange",
                   "threshold", "nsigma", "pblimit", "pbmask", "scales", "psfcutoff", "smallscalebias",
                   "cycleniter_final_image_nomask", "datacolumn", "stokes", "gridder", "deconvolver", "nterms")
    tclean_overrides = {k: p[k] for k in tclean_keys if k in p}
    tclean_overrides.update(ov)
    _check_memory(groups, imsize, tclean_overrides)
    vis = str(tree.abs(vis_rel))
    all_spws = set(msinfo.spws_with_data(vis))  # rows, not SPECTRAL_WINDOW entries (issue 14)
    for g in groups:
        missing = [s for s in map(int, g.split(",")) if s not in all_spws]
        if missing:
            raise InputError(f"spw group {g!r}: spw {missing} has no data in the MeasurementSet {vis_rel}")
    buffer = float(p.get("search_radius_arcsec", fieldsel.DEFAULT_BUFFER_ARCSEC))
    selection = fieldsel.select_fields(vis, phasecenter, fieldsel.CUTOUT_HALF_ARCSEC + buffer)
    field_ids = list(selection.ids)
    for note in selection.notes:
        log.warning("%s: %s", vis_rel, note)
    if not field_ids:
        raise InputError(f"no TARGET field of {vis_rel} with a VLASS name lies within "
                         f"{fieldsel.CUTOUT_HALF_ARCSEC + buffer:.0f} arcsec of phasecenter {phasecenter!r}"
                         + "".join(f"; {n}" for n in selection.notes))
    box_ids = fieldsel.box_fields(vis, phasecenter, fieldsel.CUTOUT_HALF_ARCSEC)
    spws_used = sorted({int(s) for g in groups for s in g.split(",")})
    flagged, total = flag_fractions(vis, box_ids, spws_used, Casa(tree.working, "editimlist_ccip"))
    reject = dict(PLANE_REJECT_MS)
    vr = p.get("vlass_plane_reject_ms", True)
    if isinstance(vr, dict):
        reject.update(vr)
    elif vr is False:
        reject["apply"] = False
    exclude = {int(s) for s in str(reject["exclude_spw"]).split(",") if s.strip().isdigit()}
    meanfreq = fieldsel.spw_mean_freqs(vis, spws_used)
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
        names = naming.GroupNames(imagename, naming.group_label(g))
        targets.append(ImagingTarget(
            group=g, spws=spws, label=names.label, imagename=names.imagename,
            reffreq_hz=reffreq_hz, reffreq=f"{reffreq_hz / 1e9!r}GHz", imsize=imsize, cell=cell,
            phasecenter=phasecenter, field_ids=field_ids, vis=vis_rel, masks=list(masks) + ["pb"],
            flagpct=frac, imaging_mode=mode, tclean_overrides=tclean_overrides))
    if rejected:
        log.warning("spw groups %s rejected: %d or more fields are more than %.0f%% flagged",
                    rejected, reject["nfield_thresh"], 100 * reject["flagpct_thresh"])
    summary = {"targets": [t.to_json() for t in targets], "skipped_flagged": skipped,
               "rejected_nfield": rejected, "groups": groups, "parameter_file": "CCIP_parameter.list",
               "flag_by_field": flag_table(box_ids, groups, flagged, total, reject),
               "archive_notes": [f"field selection: {n}" for n in selection.notes]}
    write_json(tree.targets_json, summary)
    if not targets:
        raise NothingLeftError(f"no spw group left to image: skipped (100% flagged) {skipped}, "
                               f"rejected (nfield) {rejected}")
    return targets


def flag_table(field_ids: list[int], groups: list[str], flagged: dict, total: dict, reject: dict) -> dict:
    """Flagged fraction per field (rows) and spw group (columns) inside the 1 deg² box: the data of
    the weblog's ``vlass_flagsummary_field_spwgroup.png``."""
    frac = []
    for f in field_ids:
        row = []
        for g in groups:
            spws = [int(s) for s in g.split(",")]
            tot = sum(total[(f, s)] for s in spws)
            row.append(sum(flagged[(f, s)] for s in spws) / tot if tot else None)
        frac.append(row)
    return {"field_ids": list(field_ids), "groups": list(groups), "fraction": frac,
            "flagpct_thresh": reject["flagpct_thresh"], "nfield_thresh": reject["nfield_thresh"]}


def _check_memory(groups: list[str], imsize: list[int], tclean_overrides: dict) -> None:
    """Each group's tclean sized before any work (issue 14 item 4): refused when the estimate
    exceeds the worker's memory, instead of an out-of-memory kill tried again and again."""
    stokes, nterms = str(tclean_overrides.get("stokes", "IQUV")), int(tclean_overrides.get("nterms", 1))
    limit = settings.worker_memory_gib()
    for g in groups:
        ok, est = memory.fits(imsize, limit, stokes, nterms)
        if not ok:
            raise ResourceLimitError(
                f"spw group {g!r}: imaging {imsize[0]}x{imsize[1]} px (stokes {stokes}, nterms {nterms}) needs "
                f"an estimated {est:.1f} GiB per tclean ({memory.BASE_MIB:.0f} MiB + "
                f"{memory.BYTES_PER_PIXEL_IQUV:.0f} B/pixel for IQUV, bench/results/imaging_scale.json), over "
                f"the worker limit of {limit:.1f} GiB (CCIP_WORKER_MEMORY_GB): lower imsize or give the "
                "workers more memory")


def summary(targets: list[ImagingTarget], tree: RunTree) -> str:
    s = read_json(tree.targets_json, {})
    skipped = s.get("skipped_flagged") or []
    return f"{len(targets)} targets" + (f"; skipped (100% flagged): {skipped}" if skipped else "")
