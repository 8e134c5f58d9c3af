"""How a run's products were made (issue 17): the pipeline's version stamp, the parameter list that
was used, and a script that replays the run.

- :func:`stamp`: ``ccip <version>`` from the installed package's metadata, with the git commit of
  the code that runs when it is a checkout (``+g<12 hex>``, ``.dirty`` with uncommitted changes), or
  ``$CCIP_GIT_COMMIT`` where the deployment bakes it in (``docker/Dockerfile``). Recorded by the
  first task (``run_params.json``) and by every imaging task in its group's result, so that a group
  cleared after an upgrade is told apart (the weblog warns, :func:`mixed_versions`).
- :func:`used_parameter_list`: the archive's ``CCIP_parameter.list`` with the run's parameters
  (``spw_groups``, ``imaging_overrides``) merged in, as ``hif_editimlist`` used them; exported
  as ``products/CCIP_parameter.list`` with the archive's original beside it
  (:data:`ORIGINAL_SUFFIX`).
- :func:`pipescript`: ``products/ccip_pipescript.py``, the stage calls of the run with its
  parameters (NRAO ships ``casa_pipescript.py``); ``ccip replay products/ccip_pipescript.py``
  runs them again into a new run tree.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
from pathlib import Path

from . import __version__

PACKAGE = "ccip"
ORIGINAL_SUFFIX = ".orig"  # products/CCIP_parameter.list.orig: the archive's list as it came
PIPESCRIPT = "ccip_pipescript.py"
_HERE = Path(__file__).resolve().parent.parent


def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return __version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the running code ('' when unknown), ``.dirty`` appended for local changes."""
    baked = os.environ.get("CCIP_GIT_COMMIT", "").strip()
    if baked:
        return baked
    try:
        head = subprocess.run(["git", "-C", str(_HERE), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", str(_HERE), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + (".dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def stamp() -> str:
    """``ccip 0.1.0+g0123456789ab[.dirty]``: what made a product."""
    c = git_commit()
    if not c:
        return f"ccip {version()}"
    sha, _, dirty = c.partition(".")
    return f"ccip {version()}+g{sha[:12]}" + (f".{dirty}" if dirty else "")


def mixed_versions(run_stamp: str, group_stamps: dict[str, str]) -> list[str]:
    """Weblog warnings for the groups made by another pipeline version than the run's first task."""
    return [f"spw group {g} was imaged by {s or 'an unstamped pipeline'}, the run's other stages by {run_stamp}: "
            "it was made by different code (a group cleared after an upgrade?); re-run the field for uniform "
            "products" for g, s in sorted(group_stamps.items()) if run_stamp and s != run_stamp]


# ---- the parameter list that was used ---------------------------------------------------------

def run_overrides(params: dict) -> dict:
    """The ``CCIP_parameter.list`` keys that a run's parameters (``run_params.json``'s ``params``)
    replace, with their values, as ``hif_editimlist`` applies them."""
    out = {}
    if params.get("spw_groups"):
        out["spw"] = list(params["spw_groups"])
    out.update(params.get("imaging_overrides") or {})
    return out


def used_parameter_list(original: str, overrides: dict, source: str) -> str:
    """The text of ``original`` (a parameter list) with ``overrides`` merged in: each overridden
    line replaced in place (the old value kept in a comment), the keys it lacked appended."""
    left = dict(overrides)
    lines = []
    for raw in original.splitlines():
        line = raw.strip()
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else None
        if key in left:
            lines.append(f"{key} = {left.pop(key)!r}  # run parameter; {source}: {line.split('=', 1)[1].strip()}")
        else:
            lines.append(raw)
    if left:
        lines.append(f"# run parameters not in {source}:")
        lines += [f"{k} = {v!r}" for k, v in left.items()]
    head = (f"# The parameters this run used: {source} with the run's parameters merged in ({stamp()}).\n"
            f"# The archive's list as it came: CCIP_parameter.list{ORIGINAL_SUFFIX}\n") if overrides else ""
    return head + "\n".join(lines) + "\n"


# ---- the replayable script ------------------------------------------------------------------

_SCRIPT = '''\
# ccip_pipescript.py: the stage calls of run {run_id!r} of field {field_id!r}, made by {stamp}.
# Replay into a new run tree (the field's archive folder must be there):
#     ccip replay ccip_pipescript.py [--run-id ID] [--archive DIR] [--work DIR]
# ccip sets RUN_ID, ARCHIVE and WORK; the stages are those of the vlass_se_cube DAG, in its order.
from ccip_ops import pipeline as p

params = {params!r}
ctx = p.stage_inputs(params, RUN_ID, ARCHIVE, WORK)  # hifv_importdata
ctx = p.editimlist_seip(ctx)                         # hif_editimlist (SEIP)
ctx = p.transform(ctx)                               # hif_transformimagedata
ctx = p.restorepims(ctx)                             # hifv_restorepims
ctx = p.flagtargets(ctx)                             # hifv_flagtargetsdata
targets = p.editimlist_ccip(ctx)                     # hif_editimlist (CCIP)
results = [p.image_spw_group(ctx, t) for t in targets]  # hif_makeimages, one per spw group{groups}
fan = p.collect(ctx, targets, results)
fan = p.pbcor(ctx, fan)                              # hifv_pbcor
fan = p.rmsimages(ctx, fan)                          # hif_makermsimages
fan = p.cutouts(ctx, fan)                            # hif_makecutoutimages
fan = p.analyzestokes(ctx, fan)                      # hifv_analyzestokescubes
fan = p.export(ctx, fan)                             # hifv_exportvlassdata
print(p.weblog(params["field_id"], RUN_ID, WORK))
'''


def pipescript(run_params: dict, groups: list[str] | None = None) -> str:
    """The script of a run from its ``run_params.json`` (operators' drills, ``fault_groups``, are
    not replayed)."""
    params = {k: v for k, v in (run_params.get("params") or {}).items() if k != "fault_groups" and v}
    params["field_id"] = run_params["field_id"]
    return _SCRIPT.format(run_id=run_params.get("run_id", ""), field_id=run_params["field_id"],
                          stamp=run_params.get("pipeline_version") or stamp(), params=params,
                          groups=f" (this run: {', '.join(groups)})" if groups else "")


def replay(script: str | Path, run_id: str, archive: str | None = None, work: str | None = None) -> dict:
    """Run a :func:`pipescript` (``ccip replay``); returns the names it defined."""
    import runpy

    return runpy.run_path(str(script), init_globals={"RUN_ID": run_id, "ARCHIVE": archive, "WORK": work})
