"""Settings taken from the environment, and the names the deployment shares: one place for each.

Light (standard library only): the DAG files import it at parse time, the embedded and the
distributed Airflow (``scripts/``, ``docker/``) read the same names.

- ``CCIP_ARCHIVE_ROOT`` (read-only inputs) and ``CCIP_WORK_ROOT`` (run trees); they default to
  ``<project>/.data/archive`` and ``<project>/.data/work``;
- the ``casa_imaging`` pool: every CASA-heavy task holds slots of it, so its size says how many
  CASA processes run on the workers at once (``CCIP_IMAGING_SLOTS``, default one per core);
- how long an imaging task may run (``CCIP_IMAGING_TIMEOUT_H``, default 24 h), which the Celery
  broker's visibility timeout must exceed (``docker/airflow.env``);
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


def imaging_timeout_h(env=None) -> float:
    """``execution_timeout`` of an imaging task, in hours: ``$CCIP_IMAGING_TIMEOUT_H``, default 24."""
    raw = str((os.environ if env is None else env).get("CCIP_IMAGING_TIMEOUT_H") or IMAGING_TIMEOUT_H_DEFAULT)
    h = float(raw) if raw.strip().replace(".", "", 1).isdigit() else 0.0
    if h <= 0:
        raise ValueError(f"CCIP_IMAGING_TIMEOUT_H={raw!r}: expected a positive number of hours")
    return h


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
