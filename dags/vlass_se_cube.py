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

Operators are told (issue 17): a failed run mails ``$CCIP_ALERT_EMAIL`` through the SMTP provider
(:func:`notify_failure`: the field, the failed groups or stages, the weblog's URL); a run may take
``dagrun_timeout`` (``$CCIP_RUN_TIMEOUT_H``, default three imaging timeouts); the ``upstream``
weight rule gives a task the weight of everything before it, so later stages of fields already
started go ahead of new fields' first stages; ``export`` emits an event of the products Asset
(:data:`PRODUCTS`) with the field in its extra, for downstream DAGs.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from ccip_ops.runparams import SCHEMAS
from ccip_ops.settings import (IMAGING_POOL, LIGHT_TIMEOUT_H, fanin_slots, imaging_timeout_h, run_timeout_h,
                               stage_timeout_h)

IMAGING_TIMEOUT = timedelta(hours=imaging_timeout_h())
STAGE_TIMEOUT = timedelta(hours=stage_timeout_h())
LIGHT_TIMEOUT = timedelta(hours=LIGHT_TIMEOUT_H)
RUN_TIMEOUT = timedelta(hours=run_timeout_h())
FANIN_SLOTS = fanin_slots()  # each fan-in task works on this many spw groups at once, holding as many slots
# one asset for every field's delivered products; the event's extra names the field and the run
PRODUCTS = Asset(name="vlass_se_cube_products", uri="ccip://vlass_se_cube/products", group="ccip")


def notify_failure(context) -> None:
    """The DAG's ``on_failure_callback``: one mail per failed run to ``$CCIP_ALERT_EMAIL`` through the
    SMTP provider's hook (connection ``$CCIP_SMTP_CONN_ID``, default ``smtp_default``, configured by
    environment: ``AIRFLOW_CONN_SMTP_DEFAULT``). Without recipients it only logs."""
    import logging

    from ccip_ops import alerts, settings

    log = logging.getLogger("ccip")
    dag_obj, run_id = context.get("dag"), context.get("run_id") or ""
    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {}) or dict(context.get("params") or {})
    ti = context.get("ti") or context.get("task_instance")
    subject, body = alerts.failure_mail(getattr(dag_obj, "dag_id", "vlass_se_cube"), run_id,
                                        str(conf.get("field_id") or ""), str(context.get("reason") or ""),
                                        getattr(ti, "task_id", "") or "")
    to = settings.alert_recipients()
    if not to:
        log.warning("%s (no mail: CCIP_ALERT_EMAIL is not set)", subject)
        return
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=settings.smtp_conn_id()) as smtp:
        smtp.send_email_smtp(to=to, subject=subject, html_content=body,
                             from_email=smtp.from_email or "ccip@localhost")
    log.info("failure mail sent to %s: %s", to, subject)


def _slots() -> int:
    """The pool slots this task holds: the number of groups its stage works on at once."""
    return int(get_current_context()["ti"].task.pool_slots or 1)


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
    dagrun_timeout=RUN_TIMEOUT,
    on_failure_callback=notify_failure,
    tags=["vlass", "ccip", "casa"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10), "execution_timeout": STAGE_TIMEOUT,
                  # finish started fields first: a task weighs as much as everything before it
                  "weight_rule": "upstream"},
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

    @task(pool=IMAGING_POOL, pool_slots=FANIN_SLOTS)
    def pbcor(ctx: dict, fan: dict) -> dict:
        return _step("pbcor", ctx, fan, workers=_slots())

    @task(pool=IMAGING_POOL, pool_slots=FANIN_SLOTS)
    def rmsimages(ctx: dict, fan: dict) -> dict:
        return _step("rmsimages", ctx, fan, workers=_slots())

    @task(pool=IMAGING_POOL, pool_slots=FANIN_SLOTS)
    def cutouts(ctx: dict, fan: dict) -> dict:
        return _step("cutouts", ctx, fan, workers=_slots())

    @task(pool=IMAGING_POOL, pool_slots=FANIN_SLOTS)
    def analyzestokes(ctx: dict, fan: dict) -> dict:
        return _step("analyzestokes", ctx, fan, workers=_slots())

    @task(pool=IMAGING_POOL, pool_slots=FANIN_SLOTS, outlets=[PRODUCTS])
    def export(ctx: dict, fan: dict) -> dict:
        out = _step("export", ctx, fan, workers=_slots())
        field_id, run_id = _run()
        get_current_context()["outlet_events"][PRODUCTS].extra = {
            "field_id": field_id, "run_id": run_id, "products": ctx["root"] + "/products",
            "fits": list(out.get("products") or [])}
        return out

    @task(trigger_rule="all_done", retries=1, execution_timeout=LIGHT_TIMEOUT)
    def weblog() -> str:
        return _step("weblog", *_run())

    @task(trigger_rule="all_done", retries=0, execution_timeout=LIGHT_TIMEOUT)
    def finalize(html: str | None) -> str:
        from ccip_ops.pipeline import errors
        from ccip_ops.runtree import RunTree
        from ccip_ops.settings import weblog_url

        field_id, run_id = _run()
        tree = RunTree.for_run(field_id, run_id)
        problems = errors(field_id, run_id)
        if problems:
            raise AirflowFailException("the run is incomplete:\n" + "\n".join(problems)
                                       + f"\nweblog: {weblog_url(get_current_context()['dag'].dag_id, run_id)}"
                                       + f" (file {tree.html / 'index.html'})")
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
