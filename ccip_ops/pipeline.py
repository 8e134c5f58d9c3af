"""The recipe as a sequence of steps: what each DAG task calls, and the same steps in one process
(:func:`run_serial`, ``ccip run``).

A step takes and returns the typed values of :mod:`ccip_ops.model` (the DAG passes them through
XCom as JSON, :func:`as_json`), records itself in the run's stage log, and leaves on disk what the
weblog shows. How a stage works is in its module under :mod:`ccip_ops.stages`; nothing here but
the order and the bookkeeping.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import replace
from pathlib import Path

from . import PIPELINE_VERSION, casa_env, fanin, provenance, runparams, settings, weblog as weblogmod
from .exceptions import FaultInjectedError, InputError
from .model import FanIn, ImagingResult, ImagingTarget, RunContext, RunParams
from .runtree import RunTree, read_json, write_json
from .stagelog import record, record_scores, recording
from .stages import scores as stagescores
from .stages import (analyzestokes as stokesmod, cutouts as cutoutsmod, editimlist, export as exportmod, flagtargets as flagmod, makeimages,
                     pbcor as pbcormod, restorepims as restoremod, rmsimages as rmsmod, stage_inputs as inputsmod,
                     transform as transformmod)

log = logging.getLogger("ccip")

STAGES = [  # (number, name as in the NRAO recipe, step = the DAG's task id)
    (1, "hifv_importdata (stage inputs)", "stage_inputs"),
    (2, "hif_editimlist (SEIP)", "editimlist_seip"),
    (3, "hif_transformimagedata", "transform"),
    (4, "hifv_restorepims", "restorepims"),
    (5, "hifv_flagtargetsdata", "flagtargets"),
    (6, "hif_editimlist (CCIP)", "editimlist_ccip"),
    (7, "hif_makeimages", "image_spw_group"),
    (8, "hifv_pbcor", "pbcor"),
    (9, "hif_makermsimages", "rmsimages"),
    (10, "hif_makecutoutimages", "cutouts"),
    (11, "hifv_analyzestokescubes", "analyzestokes"),
    (12, "hifv_exportvlassdata", "export"),
]


def as_json(value):
    """A step's value as it travels by XCom."""
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value.to_json() if hasattr(value, "to_json") else value


def _ctx(c) -> RunContext:
    return c if isinstance(c, RunContext) else RunContext.from_json(c)


def _fan(f) -> FanIn:
    return f if isinstance(f, FanIn) else FanIn.from_json(f)


# ---- stages 1-6 -------------------------------------------------------------------------

def stage_inputs(params: RunParams | dict, run_id: str, archive: str | None = None,
                 work: str | None = None) -> RunContext:
    """Check the run's parameters (a dict is checked against the schemas) and the field's archive
    folder; copy the inputs into a new run tree."""
    if not isinstance(params, RunParams):
        params = runparams.check(params)
    tree = RunTree.for_run(params.field_id, run_id, Path(work) if work else None).make()
    arch = Path(archive) if archive else settings.archive_root()
    with recording(tree, "stage_inputs") as s:
        notes = inputsmod.check_archive(arch, params.field_id, params.spw_groups, tree)
        found = inputsmod.copy_inputs(arch, params.field_id, tree, notes)
        s.notes = f"PIMS {Path(found['pims']).name}"
    write_json(tree.run_params_json, {"field_id": params.field_id, "run_id": run_id, "params": params.plain(),
                                      "pipeline_version": PIPELINE_VERSION, "pipeline": provenance.stamp(),
                                      "archive": str(arch),
                                      "casa": casa_env.versions()})
    return RunContext(field_id=params.field_id, run_id=run_id, root=str(tree.root), archive=str(arch),
                      params=params, pims=found["pims"], name=found["name"])


def editimlist_seip(ctx) -> RunContext:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "editimlist_seip") as s:
        seip = editimlist.seip_target(ctx.tree)
        s.notes = seip.imagename
    return replace(ctx, seip=seip)


def transform(ctx) -> RunContext:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "transform") as s:
        vis = transformmod.split_pims(ctx.tree, ctx.pims, ctx.seip)
        s.notes = Path(vis).name
    return replace(ctx, vis=vis)


def restorepims(ctx) -> RunContext:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "restorepims") as s:
        out = restoremod.restore_pims(ctx.tree, ctx.vis, ctx.seip)
        s.notes = out.notes
    return replace(ctx, masks=out.masks)


def flagtargets(ctx) -> RunContext:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "flagtargets") as s:
        summaries = flagmod.flag_targets(ctx.tree, ctx.vis)
        s.notes = flagmod.notes(summaries)
        s.set_scores(stagescores.flagtargets(summaries))
    return ctx


def editimlist_ccip(ctx) -> list[ImagingTarget]:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "editimlist_ccip") as s:
        targets = editimlist.ccip_targets(ctx.tree, ctx.vis, ctx.masks, ctx.params.spw_groups,
                                          dict(ctx.params.imaging_overrides))
        s.notes = editimlist.summary(targets, ctx.tree)
        s.set_scores(stagescores.editimlist(ctx.tree))
    return targets


# ---- stage 7: one spw group ---------------------------------------------------------------

def image_spw_group(ctx, target, try_number: int = 1) -> ImagingResult:
    ctx = _ctx(ctx)
    t = target if isinstance(target, ImagingTarget) else ImagingTarget.from_json(target)
    if runparams.fault_injected(ctx.params, t, try_number):
        err = ImagingResult(target=t, status="failed", error=f"fault injected for spw group {t.group} "
                                                             "(params.fault_groups)")
        ctx.tree.results.mkdir(parents=True, exist_ok=True)
        write_json(ctx.tree.failure_json(t.label), err.to_json())
        raise FaultInjectedError(err.error)
    return makeimages.image_group(ctx.tree, t, try_number)


# ---- fan-in: stages 8-12 -----------------------------------------------------------------

def collect(ctx, targets, results) -> FanIn:
    ctx = _ctx(ctx)
    return fanin.collect(ctx.tree, [t if isinstance(t, ImagingTarget) else ImagingTarget.from_json(t) for t in targets],
                         [r if r is None or isinstance(r, ImagingResult) else ImagingResult.from_json(r)
                          for r in results or []])


def _workers(workers: int | None) -> int:
    """Groups a fan-in step works on at once: what its task holds of the pool, else the setting."""
    return int(workers) if workers else settings.fanin_slots()


def _per_group(ctx, fan, step: str, fn, workers: int | None = None) -> FanIn:
    ctx, fan = _ctx(ctx), _fan(fan)
    with recording(ctx.tree, step) as s:
        fan = fanin.for_each_group(ctx.tree, fan, step, fn, _workers(workers))
        s.notes, s.qa = fanin.notes(fan), fanin.qa_score(fan)
    return fan


def pbcor(ctx, fan, workers: int | None = None) -> FanIn:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "pbcor") as s:
        fan = pbcormod.reject_planes(ctx.tree, fanin.for_each_group(ctx.tree, _fan(fan), "pbcor",
                                                                    pbcormod.pbcor_group, _workers(workers)))
        fanin.save(ctx.tree, fan)
        s.notes = pbcormod.notes(fan)
        s.set_scores(stagescores.pbcor(fan))
        record_scores(ctx.tree, "image_spw_group", stagescores.makeimages(fan))
    return fan


def rmsimages(ctx, fan, workers: int | None = None) -> FanIn:
    return _per_group(ctx, fan, "rmsimages", rmsmod.rms_image, workers)


def cutouts(ctx, fan, workers: int | None = None) -> FanIn:
    ctx = _ctx(ctx)
    with recording(ctx.tree, "cutouts") as s:
        fan = fanin.for_each_group(ctx.tree, _fan(fan), "cutouts", cutoutsmod.cut_group, _workers(workers))
        s.notes = fanin.notes(fan)
        s.set_scores(stagescores.cutouts(fan))
    return fan


def analyzestokes(ctx, fan, workers: int | None = None) -> FanIn:
    ctx, fan = _ctx(ctx), _fan(fan)
    with recording(ctx.tree, "analyzestokes") as s:
        s.notes = stokesmod.notes(stokesmod.analyze_stokes(ctx.tree, fan.results, fan.planes, _workers(workers)))
    return fan


def export(ctx, fan, workers: int | None = None) -> FanIn:
    ctx, fan = _ctx(ctx), _fan(fan)
    with recording(ctx.tree, "export") as s:
        out = exportmod.export_products(ctx.tree, fan, ctx.vis, _workers(workers))
        s.notes = f"{len(out['fits'])} FITS"
    return fanin.save(ctx.tree, replace(fan, products=tuple(out["fits"])))


# ---- the weblog and the run's outcome ----------------------------------------------------

def weblog(field_id: str, run_id: str, work: str | None = None) -> str:
    """Render the run's weblog from its tree (whatever failed); returns html/index.html."""
    tree = RunTree.for_run(field_id, run_id, Path(work) if work else None)
    if not tree.root.exists():
        raise InputError(f"no run tree at {tree.root}: the first task failed before creating it")
    return str(weblogmod.write(tree, field_id, run_id, STAGES))


def errors(field_id: str, run_id: str, work: str | None = None) -> list[str]:
    """What the rendered weblog says went wrong; empty for a complete run."""
    tree = RunTree.for_run(field_id, run_id, Path(work) if work else None)
    rep = read_json(tree.report_json)
    return rep.get("errors", []) if rep is not None else ["no report was written"]


# ---- serial runner -------------------------------------------------------------------------

def run_serial(params: RunParams | dict, run_id: str | None = None, archive: str | None = None,
               work: str | None = None) -> dict:
    """All stages in this process, without Airflow (``ccip run``). Returns the summary; raises
    InputError for bad input (after the weblog is written)."""
    run_id = run_id or time.strftime("serial__%Y%m%dT%H%M%S", time.gmtime())
    if not isinstance(params, RunParams):
        params = runparams.check(params)
    t0 = time.time()
    tree = RunTree.for_run(params.field_id, run_id, Path(work) if work else None)
    try:
        ctx = stage_inputs(params, run_id, archive, work)
        for step in (editimlist_seip, transform, restorepims, flagtargets):
            ctx = step(ctx)
        targets = editimlist_ccip(ctx)
        results = []
        for t in targets:
            try:
                results.append(image_spw_group(ctx, t))
            except Exception as e:  # noqa: BLE001 - the other groups go on, as the mapped tasks do
                log.error("spw group %s failed: %s", t.group, e)
                log.debug("%s", traceback.format_exc())
        fan = collect(ctx, targets, results)
        for step in (pbcor, rmsimages, cutouts, analyzestokes, export):
            fan = step(ctx, fan)
    except InputError:
        raise  # ``ccip run`` says "bad input"; the failed stage is in the weblog
    except Exception as e:  # noqa: BLE001 - the weblog says what failed
        log.error("run failed: %s", e)
        record(tree, "run", "failed", time.time() - t0, f"{type(e).__name__}: {e}", 0.0)
    finally:
        if tree.root.exists():
            weblog(params.field_id, run_id, work)
    return {"run_tree": str(tree.root), "weblog": str(tree.html / "index.html"),
            "products": str(tree.products), "errors": errors(params.field_id, run_id, work),
            "seconds": round(time.time() - t0, 1)}
