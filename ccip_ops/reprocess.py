"""Which archive fields need a (re)processing run: the decisions of the scheduled sweep.

The DAG ``vlass_se_cube_reprocess`` asks Airflow which fields have a ``vlass_se_cube`` run
queued or running and passes them here as ``busy``; everything else is read from disk:

- a field is a *candidate* when its archive folder holds every input (the same check as the
  first task of a run, :func:`ccip_ops.stages.stage_inputs.find_inputs`);
- a field is *done* when one of its run trees has ``products/run_params.json`` written by the
  current pipeline version and a weblog report without errors (a run that completed);
- a field is *waiting for new inputs* when its last run failed on bad input (a stage failed with
  :class:`InputError`) and the archive folder's fingerprint (names, sizes and times of its files,
  recorded by that run's first task) is still the same: no run can succeed until an operator
  fixes the folder, so it uses none of the sweep's runs;
- the sweep triggers the other candidates (all of them when forced, still never a busy one), at
  most ``max_runs``, fewest failed tries first (never-tried fields before any retry), then the
  least recently tried, then field id: a field that fails every time never holds back one that
  was never tried, and every field with complete inputs is tried within
  ``ceil(fields / max_runs)`` sweeps.

:func:`clean_failed_runs` removes the MS copies (scratch of hundreds of GB at VLASS size) of the
finished failed runs of the fields that are not busy, once a later run exists or the run ended
``KEEP_FAILED_S`` (3 days) ago, the time an operator has to clear its failed groups; their weblogs
and records stay.
No Airflow import here; nothing is written to the archive.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import PIPELINE_VERSION
from .exceptions import InputError
from .naming import is_field_id
from .runtree import RunTree, read_json, remove


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


@dataclass(frozen=True)
class PastRun:
    """What a run tree says about how its run went."""

    run_id: str
    started: float
    outcome: str  # "success", "bad_input", "failed", "unfinished"
    fingerprint: str | None
    version: str | None
    why: str = ""


def _outcome(tree: RunTree) -> tuple[str, str]:
    stages = read_json(tree.stages_json, {}) or {}
    bad = [f"{step}: {r.get('notes', '')}" for step, r in stages.items()
           if r.get("status") == "failed" and str(r.get("notes", "")).startswith("InputError")]
    report = read_json(tree.report_json)
    if bad:
        return "bad_input", bad[0][:300]
    if report is None:
        return "unfinished", ""
    if report.get("state") == "success" and not report.get("errors"):
        return "success", ""
    return "failed", "; ".join(report.get("errors") or [])[:300]


def past_runs(work: Path, field_id: str) -> list[PastRun]:
    """The field's run trees, oldest first."""
    fdir = Path(work) / field_id
    out = []
    if not fdir.is_dir():
        return out
    for run in fdir.iterdir():
        if not run.is_dir() or run.name.startswith("."):
            continue
        tree = RunTree(run)
        inputs = read_json(tree.stage_data("stage_inputs"), {}) or {}
        params = read_json(tree.run_params_json, {}) or {}
        outcome, why = _outcome(tree)
        started = inputs.get("started")
        started = run.stat().st_mtime if started is None else started
        out.append(PastRun(run_id=params.get("run_id") or tree.owner() or run.name, started=float(started),
                           outcome=outcome, fingerprint=inputs.get("fingerprint"),
                           version=params.get("pipeline_version"), why=why))
    return sorted(out, key=lambda r: (r.started, r.run_id))


def completed_runs(work: Path, field_id: str, version: str = PIPELINE_VERSION) -> list[str]:
    """Run ids of the field's completed runs made by pipeline ``version``."""
    return [r.run_id for r in past_runs(work, field_id) if r.outcome == "success" and r.version == version]


def plan_sweep(archive: Path, work: Path, busy: set[str] | list[str], max_runs: int, force: bool = False,
               version: str = PIPELINE_VERSION) -> dict:
    """The sweep's decision: which fields to trigger now, and why each other field is left."""
    from .stages.stage_inputs import fingerprint

    fields, incomplete = archive_fields(archive)
    busy = set(busy)
    candidates, skipped = [], {}
    for f in fields:
        if f in busy:
            skipped[f] = "a vlass_se_cube run of this field is queued or running"
            continue
        runs = past_runs(work, f)
        done = [r.run_id for r in runs if r.outcome == "success" and r.version == version]
        if done and not force:
            skipped[f] = f"already processed by pipeline {version} (run {done[-1]})"
            continue
        now = fingerprint(Path(archive) / f)
        last = runs[-1] if runs else None
        if last is not None and last.outcome == "bad_input" and last.fingerprint == now:
            skipped[f] = (f"its last run {last.run_id} failed on bad input and the archive folder has not changed "
                          f"since: {last.why}")
            continue
        # failed tries with the inputs as they are now: a field never tried (or just fixed) goes first
        failed = sum(1 for r in runs if r.outcome != "success" and r.fingerprint == now)
        candidates.append(((failed, last.started if last else 0.0, f), f))
    trigger = []
    for _, f in sorted(candidates):
        if len(trigger) >= max_runs:
            skipped[f] = f"over this sweep's limit of {max_runs} runs: left for the next sweep"
            continue
        trigger.append(f)
    skipped.update({f: "inputs incomplete: " + why for f, why in incomplete.items()})
    return {"trigger": trigger, "skipped": skipped, "pipeline_version": version, "force": force,
            "max_runs": max_runs}


KEEP_FAILED_S = 3 * 86400  # an operator's time to clear and retry a failed run's groups


def clean_failed_runs(work: Path, busy: set[str] | list[str], keep_s: float = KEEP_FAILED_S,
                      now: float | None = None) -> dict[str, list[str]]:
    """Remove the MS copies (``working/*.ms`` and their ``.flagversions``) of the finished runs that
    failed, in the fields that have no active run, once a later run of the field exists or the run
    ended more than ``keep_s`` ago (until then an operator may clear its failed groups, which need
    the MS). Returns {run folder: [removed names]}."""
    import time

    busy, removed = set(busy), {}
    now = time.time() if now is None else now
    work = Path(work)
    if not work.is_dir():
        return removed
    for fdir in sorted(work.iterdir()):
        if not fdir.is_dir() or not is_field_id(fdir.name) or fdir.name in busy:
            continue
        runs = past_runs(work, fdir.name)
        latest = runs[-1].run_id if runs else None
        for run in sorted(p for p in fdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            tree = RunTree(run)
            outcome, _ = _outcome(tree)
            if outcome not in ("bad_input", "failed") or not tree.report_json.is_file():
                continue  # only finished runs: the weblog task wrote the report at the run's end
            run_id = (read_json(tree.run_params_json, {}) or {}).get("run_id") or tree.owner() or run.name
            if run_id == latest and now - tree.report_json.stat().st_mtime < keep_s:
                continue
            gone = []
            for p in sorted(tree.working.glob("*.ms")) + sorted(tree.working.glob("*.ms.flagversions")) \
                    + sorted(tree.working.glob("*.ms.partial")):
                if p.is_dir() and not p.is_symlink():
                    remove(p)
                    gone.append(p.name)
            if gone:
                removed[str(run.relative_to(work))] = gone
    return removed
