"""vlass_se_cube: the VLASS-SE-CUBE (CCIP) recipe for one VLASS field, triggered per field.

Thin TaskFlow wrappers over ``ccip_ops.pipeline``; CASA and the stage modules are imported
inside the tasks only, so parsing this file stays fast. See DESIGN.md §1 for the shape:

 stage_inputs -> editimlist_seip -> transform -> restorepims -> flagtargets -> editimlist_ccip
   -> image_spw_group (mapped, one per spw group, pool casa_imaging)
   -> collect (all_done_min_one_success) -> pbcor -> rmsimages -> cutouts -> analyzestokes -> export
   -> weblog (all_done: always renders) -> finalize (fails the run if any group or stage failed)
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from ccip_ops.runparams import SCHEMAS

IMAGING_TIMEOUT = timedelta(hours=int(os.environ.get("CCIP_IMAGING_TIMEOUT_H", "24")))


def _bad_input(fn, *args):
    """Run a pipeline step; bad input fails the task at once, without retries."""
    from ccip_ops.model import CcipInputError

    try:
        return fn(*args)
    except CcipInputError as e:
        raise AirflowFailException(str(e)) from e


@dag(
    dag_id="vlass_se_cube",
    description="VLASS Coarse Cube Imaging Pipeline (VLASS-SE-CUBE) for one field",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=16,
    tags=["vlass", "ccip", "casa"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10)},
    params={  # the trigger form; one schema definition with the first task's check (ccip_ops.runparams)
        "field_id": Param(**SCHEMAS["field_id"]),
        "spw_groups": Param(None, **SCHEMAS["spw_groups"]),
        "imaging_overrides": Param({}, **SCHEMAS["imaging_overrides"]),
        "fault_groups": Param([], **SCHEMAS["fault_groups"]),
    },
    doc_md=__doc__,
)
def vlass_se_cube():
    def ctx_params():
        c = get_current_context()
        return c["params"], c["run_id"]

    @task(retries=0)
    def stage_inputs() -> dict:
        from ccip_ops import pipeline, runparams

        p, run_id = ctx_params()
        # checked again here: against the schema, then (pipeline.stage_inputs) against the archive
        params = _bad_input(runparams.check, {k: p.get(k) for k in runparams.SCHEMAS})
        params.pop("field_id")
        return _bad_input(pipeline.stage_inputs, p["field_id"], run_id, params)

    @task(retries=0)
    def editimlist_seip(ctx: dict) -> dict:
        from ccip_ops import pipeline

        return _bad_input(pipeline.editimlist_seip, ctx)

    @task
    def transform(ctx: dict) -> dict:
        from ccip_ops import pipeline

        return _bad_input(pipeline.transform, ctx)

    @task
    def restorepims(ctx: dict) -> dict:
        from ccip_ops import pipeline

        return _bad_input(pipeline.restorepims, ctx)

    @task
    def flagtargets(ctx: dict) -> dict:
        from ccip_ops import pipeline

        return _bad_input(pipeline.flagtargets, ctx)

    @task
    def editimlist_ccip(ctx: dict) -> list[dict]:
        from ccip_ops import pipeline

        return _bad_input(pipeline.editimlist_ccip, ctx)

    @task(pool="casa_imaging", map_index_template="{{ spw_group }}", execution_timeout=IMAGING_TIMEOUT)
    def image_spw_group(ctx: dict, target: dict) -> dict:
        from ccip_ops import pipeline

        c = get_current_context()
        c["spw_group"] = target["label"]
        faults = (ctx.get("params") or {}).get("fault_groups") or []
        if c["ti"].try_number > 1 and faults:
            # an injected fault hits the first try only: a retry or a clear of this group runs for real
            ctx = {**ctx, "params": {**ctx["params"], "fault_groups": []}}
        elif target["group"] in faults or target["label"] in faults:
            try:
                return pipeline.image_spw_group(ctx, target)
            except RuntimeError as e:
                raise AirflowFailException(str(e)) from e  # a drill: no retries, the operator clears it
        return _bad_input(pipeline.image_spw_group, ctx, target)

    @task(trigger_rule="all_done_min_one_success")
    def collect(ctx: dict, targets: list[dict], results) -> dict:
        from ccip_ops import pipeline

        fan = pipeline.collect(ctx, targets, list(results or []))
        if not fan["results"]:
            raise AirflowFailException("every spw group failed: " + "; ".join(
                f"{f['group']}: {f['error']}" for f in fan["failed"]))
        return fan

    @task
    def pbcor(ctx: dict, fan: dict) -> dict:
        from ccip_ops import pipeline

        return pipeline.pbcor(ctx, fan)

    @task
    def rmsimages(ctx: dict, fan: dict) -> dict:
        from ccip_ops import pipeline

        return pipeline.rmsimages(ctx, fan)

    @task
    def cutouts(ctx: dict, fan: dict) -> dict:
        from ccip_ops import pipeline

        return pipeline.cutouts(ctx, fan)

    @task
    def analyzestokes(ctx: dict, fan: dict) -> dict:
        from ccip_ops import pipeline

        return pipeline.analyzestokes(ctx, fan)

    @task
    def export(ctx: dict, fan: dict) -> dict:
        from ccip_ops import pipeline

        return pipeline.export(ctx, fan)

    @task(trigger_rule="all_done", retries=1)
    def weblog() -> str:
        from ccip_ops import pipeline
        from ccip_ops.runtree import RunTree

        p, run_id = ctx_params()
        tree = RunTree.for_run(p["field_id"], run_id)
        if not tree.root.exists():
            raise AirflowFailException(f"no run tree at {tree.root}: the first task failed before creating it")
        return pipeline.weblog({"field_id": p["field_id"], "run_id": run_id, "root": str(tree.root)})

    @task(trigger_rule="all_done", retries=0)
    def finalize(html: str | None) -> str:
        from ccip_ops.pipeline import report_errors
        from ccip_ops.runtree import RunTree

        p, run_id = ctx_params()
        tree = RunTree.for_run(p["field_id"], run_id)
        errors = report_errors(tree)
        if errors:
            raise AirflowFailException("the run is incomplete:\n" + "\n".join(errors)
                                       + f"\nweblog: {tree.html / 'index.html'}")
        return str(tree.products)

    ctx = stage_inputs()
    ctx = restorepims(transform(editimlist_seip(ctx)))
    ctx = flagtargets(ctx)
    targets = editimlist_ccip(ctx)
    results = image_spw_group.partial(ctx=ctx).expand(target=targets)
    fan = collect(ctx, targets, results)
    done = export(ctx, analyzestokes(ctx, cutouts(ctx, rmsimages(ctx, pbcor(ctx, fan)))))
    html = weblog()
    done >> html
    finalize(html)


vlass_se_cube()
