"""Settings taken from the environment, and the names the deployment shares: one place for each.

Light (standard library only): the DAG files import it at parse time, the embedded and the
distributed Airflow (``scripts/``, ``docker/``) read the same names.

- ``CCIP_ARCHIVE_ROOT`` (read-only inputs) and ``CCIP_WORK_ROOT`` (run trees); they default to
  ``<project>/.data/archive`` and ``<project>/.data/work``;
- the ``casa_imaging`` pool: every CASA-heavy task holds slots of it, so its size says how many
  CASA processes run on the workers at once (``CCIP_IMAGING_SLOTS``, default one per core);
- how long an imaging task may run (``CCIP_IMAGING_TIMEOUT_H``, default 24 h) and any other CASA
  task (``CCIP_STAGE_TIMEOUT_H``, default 12 h), which the Celery broker's visibility timeout must
  exceed (``docker/airflow.env``);
- the most a ``reimaging_resources.tgz`` may hold once extracted (``CCIP_TARBALL_MAX_GIB``, default
  100 GiB: a VLASS field's six resources are a few GiB);
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
