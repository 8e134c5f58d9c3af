"""vlass_se_cube: the VLASS-SE-CUBE (CCIP) recipe for one VLASS field, triggered per field.

Thin TaskFlow wrappers over ``ccip_ops.pipeline`` (one task per step of ``pipeline.STAGES``);
CASA and the stage modules are imported inside the tasks only, so parsing this file stays fast.
See DESIGN.md §1 for the shape:

 stage_inputs -> editimlist_seip -> transform -> restorepims -> flagtargets -> editimlist_ccip
   -> image_spw_group (mapped, one per spw group, pool casa_imaging)
   -> collect (all_done_min_one_success) -> pbcor -> rmsimages -> cutouts -> analyzestokes -> export
   -> weblog (all_done: always renders) -> finalize (fails the run if any group or stage failed)

Failures are mapped in one place (``_step``): a cause that no retry can fix (bad input, every
group failed, an operator's drill; ``ccip_ops.exceptions``) fails the task at once, and so does
a task's own ``execution_timeout`` (another try would take as long); anything else is retried
with backoff. Every task has an ``execution_timeout``: imaging ``CCIP_IMAGING_TIMEOUT_H``, the
other CASA tasks ``CCIP_STAGE_TIMEOUT_H``, the light ones an hour (``ccip_ops.settings``).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from ccip_ops.runparams import SCHEMAS
from ccip_ops.settings import IMAGING_POOL, LIGHT_TIMEOUT_H, imaging_timeout_h, stage_timeout_h

IMAGING_TIMEOUT = timedelta(hours=imaging_timeout_h())
STAGE_TIMEOUT = timedelta(hours=stage_timeout_h())
LIGHT_TIMEOUT = timedelta(hours=LIGHT_TIMEOUT_H)


def _step(name: str, *args, **kw):
    """Run ``pipeline.<name>`` on the JSON values of XCom and return its value as JSON; a
    deterministic failure fails the task without retries."""
    from ccip_ops import pipeline
    from ccip_ops.exceptions import is_retryable

    try:
        return pipeline.as_json(getattr(pipeline, name)(*args, **kw))
    except AirflowTaskTimeout as e:  # the task's own limit: deterministic, never retried
        raise AirflowFailException(f"{name} ran into its execution_timeout; another try would take as long "
                                   "(raise CCIP_IMAGING_TIMEOUT_H / CCIP_STAGE_TIMEOUT_H or shrink the work)") from e
    except Exception as e:
        if not is_retryable(e):
            raise AirflowFailException(f"{type(e).__name__}: {e}") from e
        raise


def _run():
    c = get_current_context()
    return c["params"]["field_id"], c["run_id"]


@dag(
    dag_id="vlass_se_cube",
    description="VLASS Coarse Cube Imaging Pipeline (VLASS-SE-CUBE) for one field",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=16,
    tags=["vlass", "ccip", "casa"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10), "execution_timeout": STAGE_TIMEOUT},
    params={  # the trigger form; one schema definition with the first task's check (ccip_ops.runparams)
        "field_id": Param(**SCHEMAS["field_id"]),
        "spw_groups": Param(None, **SCHEMAS["spw_groups"]),
        "imaging_overrides": Param({}, **SCHEMAS["imaging_overrides"]),
        "fault_groups": Param([], **SCHEMAS["fault_groups"]),
    },
    doc_md=__doc__,
)
def vlass_se_cube():
    @task(retries=0)
    def stage_inputs() -> dict:
        c = get_current_context()
        # the parameters are checked again there: the form is not the only way to create a run
        return _step("stage_inputs", {k: c["params"].get(k) for k in SCHEMAS}, c["run_id"])

    @task(retries=0, execution_timeout=LIGHT_TIMEOUT)
    def editimlist_seip(ctx: dict) -> dict:
        return _step("editimlist_seip", ctx)

    @task
    def transform(ctx: dict) -> dict:
        return _step("transform", ctx)

    @task
    def restorepims(ctx: dict) -> dict:
        return _step("restorepims", ctx)

    @task
    def flagtargets(ctx: dict) -> dict:
        return _step("flagtargets", ctx)

    @task
    def editimlist_ccip(ctx: dict) -> list[dict]:
        return _step("editimlist_ccip", ctx)

    @task(pool=IMAGING_POOL, map_index_template="{{ spw_group }}", execution_timeout=IMAGING_TIMEOUT)
    def image_spw_group(ctx: dict, target: dict) -> dict:
        c = get_current_context()
        c["spw_group"] = target["label"]
        return _step("image_spw_group", ctx, target, try_number=c["ti"].try_number)

    @task(trigger_rule="all_done_min_one_success", execution_timeout=LIGHT_TIMEOUT)
    def collect(ctx: dict, targets: list[dict], results) -> dict:
        return _step("collect", ctx, targets, list(results or []))

    @task
    def pbcor(ctx: dict, fan: dict) -> dict:
        return _step("pbcor", ctx, fan)

    @task
    def rmsimages(ctx: dict, fan: dict) -> dict:
        return _step("rmsimages", ctx, fan)

    @task
    def cutouts(ctx: dict, fan: dict) -> dict:
        return _step("cutouts", ctx, fan)

    @task
    def analyzestokes(ctx: dict, fan: dict) -> dict:
        return _step("analyzestokes", ctx, fan)

    @task
    def export(ctx: dict, fan: dict) -> dict:
        return _step("export", ctx, fan)

    @task(trigger_rule="all_done", retries=1, execution_timeout=LIGHT_TIMEOUT)
    def weblog() -> str:
        return _step("weblog", *_run())

    @task(trigger_rule="all_done", retries=0, execution_timeout=LIGHT_TIMEOUT)
    def finalize(html: str | None) -> str:
        from ccip_ops.pipeline import errors
        from ccip_ops.runtree import RunTree

        field_id, run_id = _run()
        tree = RunTree.for_run(field_id, run_id)
        problems = errors(field_id, run_id)
        if problems:
            raise AirflowFailException("the run is incomplete:\n" + "\n".join(problems)
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
