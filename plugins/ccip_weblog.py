"""ccip weblog plugin: each vlass_se_cube run's weblog inside the Airflow UI.

- a FastAPI app mounted at ``/ccip`` on the API server:
  ``/ccip/runs/<dag_id>/<run_id>/html/index.html`` (and every file under the run's ``html/``
  and ``products/``) serves the run's tree, found from the run's ``field_id`` parameter;
  ``/ccip/runs/<dag_id>/<run_id>/logs/`` lists the run's CASA logs (``working/logs/*.casa.log``,
  one per stage or spw group, and ``casa_commands.log``), served as plain text, also while the
  run is running;
  ``/ccip/`` lists the recent runs with their weblogs;
- an external view with destination ``dag_run``: a *Weblog* tab on every run of the DAG that
  shows that page in the UI, and a *VLASS weblogs* entry in the navigation bar.

The pages need a logged-in user allowed to read the DAG's runs (the UI's session cookie, or a
``Bearer`` token from ``/auth/token``). Only runs of ``vlass_se_cube`` have weblogs (another DAG's
run with the same run id is never given this one's files), and only ``html/``, ``products/`` and the CASA logs
(``working/logs/``, ``working/casa_commands.log``) of a run are served, never ``working/`` nor anything outside the run tree: the containment check is
made on the final file, symbolic links resolved (``RunTree.served``), after ``index.html`` is added.
"""
from __future__ import annotations

import html as _html

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from airflow.plugins_manager import AirflowPlugin

PREFIX = "/ccip"
SERVED = ("html", "products", "working/logs", "working/casa_commands.log")
TEXT = ("working/logs/", "working/casa_commands.log")  # served as text/plain
WEBLOG_DAG = "vlass_se_cube"  # the only DAG whose runs have run trees

app = FastAPI(title="ccip weblogs", description="VLASS-SE-CUBE weblogs of the runs")


async def can_read_runs(request: Request) -> None:
    """Airflow's own check (``requires_access_dag("GET", RUN)``) for the DAG in the path: a user
    from the Bearer token or the UI's session cookie. Imported here, not at module level: every
    task process loads the plugins, and the API server's security module is slow to import."""
    from fastapi.security import HTTPAuthorizationCredentials

    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api import security

    auth = request.headers.get("authorization", "")
    creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=auth[7:].strip()) \
        if auth[:7].lower() == "bearer " else None
    user = await security.get_user(request, None, creds)
    dag_id = request.path_params.get("dag_id") or "vlass_se_cube"
    security.requires_access_dag("GET", DagAccessEntity.RUN, dag_id)(request, user)


def _run(dag_id: str, run_id: str):
    """(conf, state) of a DAG run from the metadata database, or 404."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as s:
        dr = s.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dr is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        return dict(dr.conf or {}), str(dr.state)


def _tree(dag_id: str, run_id: str):
    from ccip_ops.exceptions import InputError
    from ccip_ops.runtree import RunTree

    if dag_id != WEBLOG_DAG:
        raise HTTPException(404, f"only runs of {WEBLOG_DAG} have weblogs, not runs of {dag_id!r}")
    conf, state = _run(dag_id, run_id)
    try:
        return RunTree.for_run(conf.get("field_id", ""), run_id), state, ""
    except InputError as e:
        return None, state, str(e)


def _page(title: str, body: str, code: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
                        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 10px;text-align:left}"
                        f"</style></head><body>{body}</body></html>", status_code=code)


@app.get("/runs/{dag_id}/{run_id}/", dependencies=[Depends(can_read_runs)])
def run_root(dag_id: str, run_id: str):
    return RedirectResponse("html/index.html")


@app.get("/runs/{dag_id}/{run_id}/logs/", dependencies=[Depends(can_read_runs)])
def run_logs(dag_id: str, run_id: str):
    """The run's CASA logs, newest first, with their sizes."""
    from urllib.parse import quote

    tree, state, _ = _tree(dag_id, run_id)
    logs = sorted((tree.working / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if tree is not None and (tree.working / "logs").is_dir() else []
    cmds = tree.working / "casa_commands.log" if tree is not None else None
    rows = [(f"working/logs/{p.name}", p) for p in logs] + ([("working/casa_commands.log", cmds)]
                                                           if cmds is not None and cmds.is_file() else [])
    body = [f"<h1>CASA logs of run <code>{_html.escape(run_id)}</code> ({_html.escape(state)})</h1><table>"
            "<tr><th>log</th><th>size</th></tr>"]
    for rel, p in rows:
        body.append(f"<tr><td><a href='../{quote(rel)}'>{_html.escape(p.name)}</a></td>"
                    f"<td>{p.stat().st_size / 1024:.1f} KiB</td></tr>")
    body.append("</table>" if rows else "</table><p>No CASA log yet.</p>")
    return _page("CASA logs", "".join(body))


@app.get("/runs/{dag_id}/{run_id}/{path:path}",
         dependencies=[Depends(can_read_runs)])
def run_file(dag_id: str, run_id: str, path: str):
    tree, state, why = _tree(dag_id, run_id)
    if tree is None:
        return _page("no weblog", f"<p>Run <code>{_html.escape(run_id)}</code> of <code>{_html.escape(dag_id)}</code> "
                                  f"has no run tree of its own, so no weblog: {_html.escape(why)}</p>", 404)
    if not path:
        path = "html/index.html"
    f = tree.served(path, SERVED)
    if f is None:
        if path == "html/index.html" and not (tree.html / "index.html").exists():
            return _page("weblog not written yet",
                         f"<p>The weblog of run <code>{_html.escape(run_id)}</code> is not written yet: the run is "
                         f"<b>{_html.escape(state)}</b>. It is written by the run's <code>weblog</code> task.</p>", 404)
        raise HTTPException(404, f"{path} is not a file of this run's html/, products/ or CASA logs")
    if any(path.startswith(t) for t in TEXT):
        return FileResponse(f, media_type="text/plain; charset=utf-8")
    return FileResponse(f)


@app.get("/", dependencies=[Depends(can_read_runs)])
def index():
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as s:
        runs = s.scalars(select(DagRun).where(DagRun.dag_id == "vlass_se_cube")
                         .order_by(DagRun.id.desc()).limit(200)).all()
        rows = [(r.run_id, (r.conf or {}).get("field_id", ""), str(r.state), r.start_date) for r in runs]
    from urllib.parse import quote

    body = ["<h1>VLASS-SE-CUBE weblogs</h1><table><tr><th>field</th><th>run</th><th>state</th><th>started</th></tr>"]
    for run_id, fid, state, started in rows:
        href = f"runs/vlass_se_cube/{quote(run_id, safe='')}/html/index.html"
        body.append(f"<tr><td>{_html.escape(fid)}</td><td><a href='{href}'>{_html.escape(run_id)}</a></td>"
                    f"<td>{_html.escape(state)}</td><td>{started or ''}</td></tr>")
    body.append("</table>")
    return _page("VLASS weblogs", "".join(body))


class CcipWeblogPlugin(AirflowPlugin):
    name = "ccip_weblog"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "ccip weblogs"}]
    external_views = [
        {"name": "Weblog", "href": "ccip/runs/{DAG_ID}/{RUN_ID}/html/index.html", "destination": "dag_run",
         "url_route": "ccip_weblog", "category": "ccip"},
        {"name": "CASA logs", "href": "ccip/runs/{DAG_ID}/{RUN_ID}/logs/", "destination": "dag_run",
         "url_route": "ccip_casa_logs", "category": "ccip"},
        {"name": "VLASS weblogs", "href": "ccip/", "destination": "nav", "url_route": "ccip_weblogs",
         "category": "browse"},
    ]
