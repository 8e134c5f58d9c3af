"""Several spw groups at once inside one fan-in task: a function over items, ``workers`` at a time.

The fan-in tasks (pbcor, rms images, cutouts, the per-plane reads of the Stokes analysis, export)
each hold ``workers`` slots of the ``casa_imaging`` pool (``pool_slots``, :func:`ccip_ops.settings.fanin_slots`),
so the pool still says how many CASA processes run on the machine. One CASA process is not
thread-safe, so each group runs in its own process (``ProcessPoolExecutor`` with *spawn*: a process
with CASA's gRPC threads must not be forked); with one worker everything runs in this process, as
before. Results come back in the order of the items, whatever order they finish in, so the
products and the fan-in state do not depend on the number of workers.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

log = logging.getLogger("ccip")


def _init_worker(level: int, threads: str | None) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s [group worker %(process)d] %(message)s")
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", threads)


def _call(fn, args):
    try:
        return True, fn(*args)
    except Exception as e:  # noqa: BLE001 - reported per item by the caller
        return False, str(e)


@contextlib.contextmanager
def _children_skip_main():
    """Spawned children run the parent's main script again (multiprocessing's "safe importing of
    main") unless the main module has neither ``__spec__`` nor ``__file__``. In an Airflow task that
    script is the ``airflow`` command, whose import sets up Airflow's database settings, which a task
    process does not have (sqlalchemy ArgumentError: every worker died, BrokenProcessPool). The
    workers need only ``ccip_ops``: the main module's two attributes are hidden while they start."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    for k in saved:
        if k == "__file__":
            del main.__dict__[k]
        else:
            main.__dict__[k] = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


@contextlib.contextmanager
def _children_allowed():
    """A Celery worker's task runs in a process forked from the worker's pool process, which
    multiprocessing takes for a daemon: it refuses to start children there ("daemonic processes are
    not allowed to have children", every parallel fan-in task failed on the Celery cluster), and whose
    authkey is billiard's, which refuses to be pickled for a spawned child. Both are set as plain
    multiprocessing's while the group workers start; they are joined before the task goes on (the
    executor's context), which is what the daemon rule protects."""
    from multiprocessing.process import AuthenticationString

    cfg = multiprocessing.current_process()._config
    daemon, authkey = cfg.get("daemon"), cfg.get("authkey")
    if daemon:
        cfg["daemon"] = False
    # billiard's own authkey type refuses to be pickled into the spawned workers' start-up data
    foreign_key = authkey is not None and type(authkey) is not AuthenticationString
    if foreign_key:
        cfg["authkey"] = AuthenticationString(bytes(authkey))
    try:
        yield
    finally:
        if daemon:
            cfg["daemon"] = daemon
        if foreign_key:
            cfg["authkey"] = authkey


def parallel_map(fn: Callable, items: Sequence[tuple], workers: int = 1) -> list[tuple[bool, object]]:
    """``[(True, fn(*args)) or (False, 'error text')]`` for each ``args`` in ``items``, in their order;
    ``workers`` (at most one per item) processes at once. ``fn`` must be a module-level function."""
    items = list(items)
    n = max(1, min(int(workers or 1), len(items)))
    if n == 1:
        out = []
        for args in items:
            try:
                out.append((True, fn(*args)))
            except Exception as e:  # noqa: BLE001
                log.debug("item failed", exc_info=True)
                out.append((False, e))
        return out
    log.info("%s on %d items, %d processes at once", getattr(fn, "__name__", fn), len(items), n)
    # each worker process gets its share of the cores for CASA's OpenMP threads
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // n))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(logging.getLogger("ccip").getEffectiveLevel(), threads)) as ex:
        with _children_skip_main(), _children_allowed():  # the workers start on submit (spawn: on demand, at most n)
            futures = [ex.submit(_call, fn, args) for args in items]
        return [f.result() for f in futures]


def failure(value, context: str) -> Exception:
    """The exception to raise for a failed item: the original one when it ran in this process, else
    a RuntimeError with the worker's message."""
    return value if isinstance(value, Exception) else RuntimeError(context)
