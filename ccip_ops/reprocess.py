"""Which archive fields need a (re)processing run: the decisions of the scheduled sweep.

The DAG ``vlass_se_cube_reprocess`` asks Airflow which fields have a ``vlass_se_cube`` run
queued or running and passes them here as ``busy``; everything else is read from disk:

- a field is a *candidate* when its archive folder holds every input (the same check as the
  first task of a run, :func:`ccip_ops.stages.stage_inputs.find_inputs`);
- a field is *done* when one of its run trees has ``products/run_params.json`` written by the
  current pipeline version and a weblog report without errors (a run that completed);
- the sweep triggers the candidates that are not done (all candidates when forced) and not
  busy, in field-id order, at most ``max_runs`` of them.

No Airflow import here; nothing is written to the archive or the work root.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import PIPELINE_VERSION
from .exceptions import InputError
from .naming import is_field_id


def archive_fields(archive: Path) -> tuple[list[str], dict[str, str]]:
    """(fields whose inputs are complete, {field: why not} for incomplete ones), sorted."""
    from .stages.stage_inputs import find_inputs

    ok, incomplete = [], {}
    if not Path(archive).is_dir():
        return ok, incomplete
    for d in sorted(Path(archive).iterdir()):
        if not d.is_dir() or not is_field_id(d.name):
            continue
        try:
            find_inputs(d)
            ok.append(d.name)
        except InputError as e:
            incomplete[d.name] = str(e)
    return ok, incomplete


def completed_runs(work: Path, field_id: str, version: str = PIPELINE_VERSION) -> list[str]:
    """Run ids of the field's completed runs made by pipeline ``version``."""
    out = []
    fdir = Path(work) / field_id
    if not fdir.is_dir():
        return out
    for run in sorted(fdir.iterdir()):
        rp, rep = run / "products" / "run_params.json", run / "html" / "report.json"
        if not (rp.is_file() and rep.is_file()):
            continue
        try:
            params, report = json.loads(rp.read_text()), json.loads(rep.read_text())
        except (OSError, ValueError):
            continue
        if params.get("pipeline_version") == version and report.get("state") == "success" \
                and not report.get("errors"):
            out.append(params.get("run_id", run.name))
    return out


def plan_sweep(archive: Path, work: Path, busy: set[str] | list[str], max_runs: int, force: bool = False,
               version: str = PIPELINE_VERSION) -> dict:
    """The sweep's decision: which fields to trigger now, and why each other field is left."""
    fields, incomplete = archive_fields(archive)
    busy = set(busy)
    trigger, skipped = [], {}
    for f in fields:
        if f in busy:
            skipped[f] = "a vlass_se_cube run of this field is queued or running"
            continue
        done = completed_runs(work, f, version)
        if done and not force:
            skipped[f] = f"already processed by pipeline {version} (run {done[-1]})"
            continue
        if len(trigger) >= max_runs:
            skipped[f] = f"over this sweep's limit of {max_runs} runs: left for the next sweep"
            continue
        trigger.append(f)
    skipped.update({f: "inputs incomplete: " + why for f, why in incomplete.items()})
    return {"trigger": trigger, "skipped": skipped, "pipeline_version": version, "force": force,
            "max_runs": max_runs}
