"""Settings taken from the environment, and the names the deployment shares: one place for each.

Light (standard library only): the DAG files import it at parse time, the embedded and the
distributed Airflow (``scripts/``, ``docker/``) read the same names.

- ``CCIP_ARCHIVE_ROOT`` (read-only inputs) and ``CCIP_WORK_ROOT`` (run trees); they default to
  ``<project>/.data/archive`` and ``<project>/.data/work``;
- the ``casa_imaging`` pool: every CASA-heavy task holds slots of it, so its size says how many
  CASA processes run on the workers at once (``CCIP_IMAGING_SLOTS``, default one per core);
- how many spw groups each fan-in task (pbcor, rms images, cutouts, analysis, export) works on at
  once: it holds as many slots of the same pool (``CCIP_FANIN_SLOTS``, default 1, never more than
  the pool's size: a task holding more slots than the pool has would never run; see
  :func:`fanin_slots` for why 1); the serial runner uses the same number of processes;
- how often a running CASA call says it is still running in the task log
  (``CCIP_CASA_HEARTBEAT_S``, default 300 s; 0 turns the heartbeat off);
- how long a whole run may take (``CCIP_RUN_TIMEOUT_H``, the DAG's ``dagrun_timeout``; default
  three imaging timeouts, see :func:`run_timeout_h`);
- where the UI is (``CCIP_UI_URL``, else Airflow's ``AIRFLOW__API__BASE_URL``, else
  ``http://localhost:8080``): the weblog's URL in messages and mails (:func:`weblog_url`);
- who is told of a failed run (``CCIP_ALERT_EMAIL``, comma-separated; unset: nobody) and through
  which SMTP connection (``CCIP_SMTP_CONN_ID``, default ``smtp_default``; the connection itself is
  configured by environment, ``AIRFLOW_CONN_SMTP_DEFAULT``);
- how long an imaging task may run (``CCIP_IMAGING_TIMEOUT_H``, default 24 h) and any other CASA
  task (``CCIP_STAGE_TIMEOUT_H``, default 12 h), which the Celery broker's visibility timeout must
  exceed (``docker/airflow.env``);
- the most a ``reimaging_resources.tgz`` may hold once extracted (``CCIP_TARBALL_MAX_GIB``, default
  100 GiB: a VLASS field's six resources are a few GiB);
- the memory one imaging task may use on a worker (``CCIP_WORKER_MEMORY_GB``, GiB, default this
  machine's): each group's tclean is sized against it before imaging;
- the Airflow connection through which the archive sweep calls the REST API (``ccip_airflow_api``).
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

IMAGING_POOL = "casa_imaging"
IMAGING_POOL_DESCRIPTION = "CASA imaging tasks (one tclean each)"
IMAGING_TIMEOUT_H_DEFAULT = 24
STAGE_TIMEOUT_H_DEFAULT = 12
LIGHT_TIMEOUT_H = 1  # the tasks without CASA work: editimlist_seip, collect, weblog, finalize
AIRFLOW_API_CONN_ID = "ccip_airflow_api"  # http://<user>:<password>@<host>:<port> of the Airflow itself


def archive_root() -> Path:
    return Path(os.environ.get("CCIP_ARCHIVE_ROOT", PROJECT_ROOT / ".data" / "archive")).resolve()


def work_root() -> Path:
    return Path(os.environ.get("CCIP_WORK_ROOT", PROJECT_ROOT / ".data" / "work")).resolve()


def positive_int(name: str, what: str, env=None) -> int | None:
    """``$name`` (of ``env``, default this process's) as a positive integer, or None when unset or
    empty; anything else is refused, naming the variable and what it sets."""
    raw = str((os.environ if env is None else env).get(name) or "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name}={raw!r}: expected a positive integer ({what})")
    return n


def imaging_slots(env=None) -> int:
    """Size of the ``casa_imaging`` pool: ``$CCIP_IMAGING_SLOTS``, default one per core."""
    return positive_int("CCIP_IMAGING_SLOTS", f"slots of the {IMAGING_POOL} pool", env) or os.cpu_count() or 2


def worker_slots(env=None) -> int | None:
    """How many tasks the Airflow that ``env`` configures runs at once: ``CCIP_WORKER_SLOTS`` (the
    Celery slots of all workers together) where set; for a CeleryExecutor without it, unknown (None:
    the number of workers is the deployment's); else the executor's ``[core] parallelism``."""
    env = os.environ if env is None else env
    explicit = positive_int("CCIP_WORKER_SLOTS", "Celery worker slots of all workers together", env)
    if explicit:
        return explicit
    if "Celery" in str(env.get("AIRFLOW__CORE__EXECUTOR", "")):
        return None
    return positive_int("AIRFLOW__CORE__PARALLELISM", "tasks the executor runs at once", env) or 32


def pool_size(env=None) -> tuple[int, str]:
    """(slots of the ``casa_imaging`` pool, why): ``CCIP_IMAGING_SLOTS``, capped so that
    ``CCIP_RESERVED_SLOTS`` (default 1) worker slots always stay free for the tasks outside the pool."""
    env = os.environ if env is None else env
    slots = imaging_slots(env)
    total = worker_slots(env)
    reserve = positive_int("CCIP_RESERVED_SLOTS", "worker slots kept for tasks other than imaging", env) or 1
    if total is None:
        return slots, (f"{slots} slots (CCIP_IMAGING_SLOTS); set CCIP_WORKER_SLOTS to the workers' slots so that "
                       f"the pool is checked to leave {reserve} of them to other tasks")
    if total <= reserve:
        raise ValueError(f"{total} worker slot(s) (CCIP_WORKER_SLOTS or [core] parallelism) leave none for "
                         f"other tasks while imaging holds one: run more worker slots than CCIP_RESERVED_SLOTS="
                         f"{reserve}")
    if slots > total - reserve:
        return total - reserve, (f"{total - reserve} slots: CCIP_IMAGING_SLOTS={slots} capped to the {total} worker "
                                 f"slots less the {reserve} kept for other tasks")
    return slots, f"{slots} slots of {total} worker slots ({total - slots} free for other tasks)"


def fanin_slots(env=None) -> int:
    """Slots of the ``casa_imaging`` pool a fan-in task holds = spw groups it works on at once:
    ``$CCIP_FANIN_SLOTS``, at most the pool's size (:func:`pool_size`: a task that asks for more
    slots than the pool has would never be scheduled). Default 1, the groups one after another in
    the task's own process. The parallel fan-in (spawned group workers) meets its speed-up
    (``bench/vlass_scale.py --slots 1 2``, README) but stays opt-in: a task that needs k slots is
    scheduled only when k are free at once, so on a pool that several runs' imaging tasks share it
    waits behind every one-slot task. Set it to a part of the pool (4 of 16, say) where the fan-in
    should take the cores it frees."""
    pool = pool_size(env)[0]
    return min(positive_int("CCIP_FANIN_SLOTS", "spw groups a fan-in task works on at once", env) or 1, pool)


def _hours(name: str, default: float, env=None) -> float:
    raw = str((os.environ if env is None else env).get(name) or default)
    h = float(raw) if raw.strip().replace(".", "", 1).isdigit() else 0.0
    if h <= 0:
        raise ValueError(f"{name}={raw!r}: expected a positive number of hours")
    return h


def imaging_timeout_h(env=None) -> float:
    """``execution_timeout`` of an imaging task, in hours: ``$CCIP_IMAGING_TIMEOUT_H``, default 24."""
    return _hours("CCIP_IMAGING_TIMEOUT_H", IMAGING_TIMEOUT_H_DEFAULT, env)


def stage_timeout_h(env=None) -> float:
    """``execution_timeout`` of every other CASA task (the MS copy, transform, restorepims, the fan-in
    stages), in hours: ``$CCIP_STAGE_TIMEOUT_H``, default 12 (the light tasks have one hour)."""
    return _hours("CCIP_STAGE_TIMEOUT_H", STAGE_TIMEOUT_H_DEFAULT, env)


def longest_task_h(env=None) -> float:
    """The longest any task of the pipeline may run, in hours."""
    return max(imaging_timeout_h(env), stage_timeout_h(env))


TARBALL_MAX_GIB_DEFAULT = 100


def tarball_max_bytes(env=None) -> int:
    """The cap on a resource tarball's extracted content: ``$CCIP_TARBALL_MAX_GIB`` GiB, default 100."""
    raw = str((os.environ if env is None else env).get("CCIP_TARBALL_MAX_GIB") or TARBALL_MAX_GIB_DEFAULT)
    try:
        gib = float(raw)
    except ValueError:
        gib = 0.0
    if not gib > 0:
        raise ValueError(f"CCIP_TARBALL_MAX_GIB={raw!r}: expected a positive number of GiB")
    return int(gib * 2**30)


def casa_heartbeat_s(env=None) -> float:
    """Seconds between the heartbeat lines of a running CASA call: ``$CCIP_CASA_HEARTBEAT_S``,
    default 300; 0 turns them off."""
    raw = str((os.environ if env is None else env).get("CCIP_CASA_HEARTBEAT_S") or "300").strip()
    try:
        s = float(raw)
    except ValueError:
        s = -1.0
    if not s >= 0:
        raise ValueError(f"CCIP_CASA_HEARTBEAT_S={raw!r}: expected a number of seconds >= 0 (0: no heartbeat)")
    return s


def run_timeout_h(env=None) -> float:
    """``dagrun_timeout`` of a field's run, in hours: ``$CCIP_RUN_TIMEOUT_H``, default three imaging
    timeouts (72 h by default). Sized from the benchmarks (README, bench/results): a field's
    groups image in parallel (one pool slot each), each within the imaging timeout; the stages
    around the imaging took a quarter of the tiny field's run (orchestration.json) and grow with
    the image size too; a third timeout leaves room for a retried group after a transient fault."""
    e = os.environ if env is None else env
    raw = str(e.get("CCIP_RUN_TIMEOUT_H") or "").strip()
    if not raw:
        return 3 * imaging_timeout_h(env)
    h = float(raw) if raw.replace(".", "", 1).isdigit() else 0.0
    if h <= 0:
        raise ValueError(f"CCIP_RUN_TIMEOUT_H={raw!r}: expected a positive number of hours")
    return h


def ui_url(env=None) -> str:
    e = os.environ if env is None else env
    return str(e.get("CCIP_UI_URL") or e.get("AIRFLOW__API__BASE_URL") or "http://localhost:8080").rstrip("/")


def weblog_url(dag_id: str, run_id: str, env=None) -> str:
    """The run's weblog in the UI, as the weblog plugin serves it (``plugins/ccip_weblog.py``)."""
    from urllib.parse import quote

    return f"{ui_url(env)}/ccip/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/html/index.html"


def alert_recipients(env=None) -> list[str]:
    raw = str((os.environ if env is None else env).get("CCIP_ALERT_EMAIL") or "")
    return [a.strip() for a in raw.split(",") if a.strip()]


def smtp_conn_id(env=None) -> str:
    return str((os.environ if env is None else env).get("CCIP_SMTP_CONN_ID") or "smtp_default")


def machine_memory_gib() -> float:
    """This machine's physical memory, in GiB (2 GiB when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return 2.0


def worker_memory_gib(env=None) -> float:
    """Memory one imaging task may use on a worker, in GiB (2^30 bytes): ``$CCIP_WORKER_MEMORY_GB``,
    default this machine's physical memory. Each group's tclean is sized against it before it runs."""
    raw = str((os.environ if env is None else env).get("CCIP_WORKER_MEMORY_GB") or "").strip()
    if not raw:
        return machine_memory_gib()
    try:
        gib = float(raw)
    except ValueError:
        gib = 0.0
    if not gib > 0:
        raise ValueError(f"CCIP_WORKER_MEMORY_GB={raw!r}: expected a positive number of GiB "
                         "(memory an imaging task may use on a worker)")
    return gib
