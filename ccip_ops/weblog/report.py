"""The weblog's data model: everything the pages show, read from the run tree (works whatever failed).

Generic on purpose: a stage's page shows its record in ``working/stages.json`` (status, time,
notes, QA score) and its own data file (``RunTree.stage_data``) through its own template
``templates/stage_<step>.html``; what several pages share (the targets, the groups' outcomes,
the planes, the thumbnails) is built once here.
"""
from __future__ import annotations

from .. import PIPELINE_VERSION, casa_env, fanin, provenance
from ..model import ImagingTarget
from ..runtree import RunTree, read_json
from ..stagelog import records

MAPPED_STEP = "image_spw_group"


def _imaging_row(targets, status_of, planes, rec: dict | None) -> dict:
    """Stage 7's row: its outcome from the groups, its QA scores from the fan-in's record (NRAO's
    makeimages scores, :mod:`ccip_ops.stages.scores`; before the fan-in, the share imaged)."""
    n, n_ok = len(targets), sum(1 for v in status_of.values() if v == "imaged")
    rec = rec or {}
    s = {"status": "ok" if n and n_ok == n else "failed" if n else "not run",
         "qa": rec["qa"] if rec.get("qa_scores") else (n_ok / n) if n else None,
         "qa_scores": rec.get("qa_scores", []), "notes": f"{n_ok} of {n} spw groups imaged"}
    if planes:
        s["notes"] += f"; {sum(1 for p in planes if not p.keep)} of {len(planes)} imaged planes are rejected"
    return s


def build(tree: RunTree, field_id: str, run_id: str, stages_list, thumbs: dict, plots: list[str]) -> dict:
    recs = records(tree)
    tg = read_json(tree.targets_json, {"targets": [], "skipped_flagged": [], "rejected_nfield": []})
    targets = [ImagingTarget.from_json(t) for t in tg["targets"]]
    ok, imaging_failed = fanin.imaging_outcomes(tree, targets, missing_is_failure=False)
    fan = fanin.load(tree)
    failures = list(fan.failed) if fan is not None else imaging_failed
    failed_labels = {f.label for f in failures if f.stage == MAPPED_STEP}
    status_of = {t.label: "imaged" if t.label in ok else "FAILED" if t.label in failed_labels else "not run"
                 for t in targets}
    planes = list(fan.planes) if fan is not None else []
    errors = [f.line() for f in failures]
    rows = []
    for num, name, step in stages_list:
        s = _imaging_row(targets, status_of, planes, recs.get(step)) if step == MAPPED_STEP else recs.get(step)
        s = s or {"status": "not run", "qa": None, "notes": ""}
        if s["status"] == "failed" and step != MAPPED_STEP:
            errors.append(f"stage {num} {name} failed: {s['notes']}")
        rows.append({"number": num, "name": name, "step": step, "qa": s.get("qa"), "notes": s.get("notes", ""),
                     "status": s.get("status", "not run"), "seconds": s.get("seconds"),
                     "qa_scores": s.get("qa_scores") or [],
                     "data": read_json(tree.stage_data(step), {})})
    if recs.get("run", {}).get("status") == "failed":
        errors.append(f"run failed: {recs['run']['notes']}")
    warnings = [f"spw group {g} is 100% flagged and was skipped as an imaging target" for g in tg["skipped_flagged"]]
    warnings += [f"spw group {g} rejected: too many fields flagged (PIPE-1800)" for g in tg.get("rejected_nfield", [])]
    run_params = read_json(tree.run_params_json, {})
    warnings += provenance.mixed_versions(run_params.get("pipeline", ""), {r.group: r.pipeline for r in ok.values()})
    # what a stage took from the data instead of a list or metadata row, or ignored (stage data "archive_notes")
    warnings += [f"stage {row['number']} {row['name']}: {n}" for row in rows
                 for n in (row["data"].get("archive_notes") or [] if isinstance(row["data"], dict) else [])]
    tclean = [{"group": r.group, "imagename": c.get("imagename", ""), "wall_s": c["wall_s"],
               "peak_rss_mb": c["peak_rss_mb"]}
              for r in ok.values() for c in r.tclean_calls if c["task"] == "tclean"]
    return {"field_id": field_id, "run_id": run_id, "pipeline_version": PIPELINE_VERSION,
            "casa_versions": ", ".join(f"{k} {v}" for k, v in casa_env.versions().items()),
            "state": "failed" if errors else "success", "errors": errors, "warnings": warnings, "stages": rows,
            "targets": tg["targets"], "status_of": status_of, "planes": [p.to_json() for p in planes],
            "thumbs": thumbs, "tclean": tclean, "plots": plots,
            "run_params": run_params, "pipeline": run_params.get("pipeline") or provenance.stamp(),
            "skipped_flagged": tg.get("skipped_flagged", []), "failed_groups": [f.group for f in failures],
            "stage_data": {row["step"]: row["data"] for row in rows}}
