"""The failure notification of a run (issue 17): what the mail says, read from the run's tree.

No Airflow here: the DAG's ``on_failure_callback`` (``dags/vlass_se_cube.py``) passes what its
context knows (DAG, run, field, the reason, the last task) and sends the mail through the SMTP
provider; :func:`failure_mail` names the field, the failed spw groups and stages (from the
weblog's report, or from the stage records when the weblog was not rendered, e.g. a run that
timed out) and the weblog's URL in the UI.
"""
from __future__ import annotations

import html
from pathlib import Path

from . import naming, settings
from .runtree import RunTree, read_json
from .stagelog import records


def find_field(run_id: str, work: Path | None = None) -> str:
    """The field of a run from the work root, when the callback's context lacks the run's conf."""
    root = work or settings.work_root()
    hits = sorted(p.parent.name for p in root.glob(f"*/{naming.run_folder(run_id)}") if p.is_dir())
    return hits[0] if len(hits) == 1 else ""


def problems(tree: RunTree | None) -> list[str]:
    """What went wrong: the weblog's errors, else the failed stage records."""
    if tree is None or not tree.root.exists():
        return ["the run tree was never created (the first task failed before creating it)"]
    rep = read_json(tree.report_json)
    if rep is not None and rep.get("errors"):
        return list(rep["errors"])
    out = [f"stage {step} failed: {r.get('notes', '')}" for step, r in records(tree).items()
           if r.get("status") == "failed"]
    for p in sorted(tree.results.glob("*.failed.json")) if tree.results.exists() else []:
        d = read_json(p, {})
        out.append(f"spw group {(d.get('target') or {}).get('group', p.name)} failed: {d.get('error', '')}")
    return out or ["no failed stage recorded: the run was stopped (timed out or marked failed) while a stage ran"]


def failure_mail(dag_id: str, run_id: str, field_id: str = "", reason: str = "", last_task: str = "",
                 work: Path | None = None) -> tuple[str, str]:
    """(subject, HTML body) of the mail for a failed run."""
    field_id = field_id or find_field(run_id, work)
    tree = None
    if field_id:
        try:
            tree = RunTree.for_run(field_id, run_id, work)
        except Exception:  # noqa: BLE001 - a malformed field id still gets its mail
            tree = None
    what = problems(tree)
    url = settings.weblog_url(dag_id, run_id)
    subject = f"[ccip] {dag_id}: field {field_id or '?'} failed (run {run_id})"
    e = html.escape
    rows = "".join(f"<li>{e(p)}</li>" for p in what)
    body = (f"<p>The {e(dag_id)} run <code>{e(run_id)}</code> of field <b>{e(field_id or 'unknown')}</b> failed"
            f"{': ' + e(reason) if reason else ''}.</p>"
            + (f"<p>Last task: <code>{e(last_task)}</code></p>" if last_task else "")
            + f"<p>What failed:</p><ul>{rows}</ul>"
            f"<p>Weblog: <a href='{e(url)}'>{e(url)}</a></p>"
            + (f"<p>Run tree: <code>{e(str(tree.root))}</code></p>" if tree is not None else ""))
    return subject, body
