"""Calling CASA tasks from a stage: logged, timed, memory-sampled, and recorded.

Every call is appended to ``working/casa_commands.log`` as the command that ran, with all its
parameters (what NRAO exports as ``casa_commands.log``), and to the caller's list of call
records (task, imagename, wall time, absolute start and end, peak resident memory of the
process during the call), which travel in the results. While the call runs, CASA's log is
followed and its progress, warnings and a heartbeat go to the task log as they are written
(:mod:`._casalog`).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from .. import casa_env, naming, settings
from ._casalog import CasaLogTail, iteration_stage

log = logging.getLogger("ccip")


class _PeakRSS:
    def __init__(self, interval: float = 0.2):
        import psutil

        self._p = psutil.Process()
        self.peak = self.now = self._p.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval):
        while not self._stop.wait(interval):
            try:
                self.now = self._p.memory_info().rss
                self.peak = max(self.peak, self.now)
            except Exception:  # pragma: no cover - process is going away
                return

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._p.memory_info().rss)

    def sample(self) -> tuple[int, int]:
        """(resident memory now, peak so far) in bytes."""
        return self.now, self.peak


def _fmt(v):
    return repr(v)


class Casa:
    """Runs casatasks for one stage in ``working`` and keeps the record of what ran."""

    def __init__(self, working: Path, stage: str):
        self.working = Path(working)
        self.stage = stage
        self.calls: list[dict] = []
        self.logfile = self.working / naming.casa_log(stage)
        casa_env.set_log(self.logfile)

    def __call__(self, task: str, **kw):
        tk = casa_env.tasks()
        fn = getattr(tk, task)
        cmd = f"{task}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kw.items()) + ")"
        log.info("CASA %s", cmd)
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        t0 = time.time()
        mem = _PeakRSS()
        tail = CasaLogTail(self.logfile, offset, task, iteration_stage(kw) if task == "tclean" else "",
                           rss=mem.sample, interval=settings.casa_heartbeat_s())
        try:
            # CASA pages temporary images (TempLattice*) into the current directory: keep them in
            # the run's working tree, as NRAO runs in its working directory
            with contextlib.chdir(self.working), mem:
                tail.start()
                out = fn(**kw)
        finally:
            progress = tail.stop()
        t1 = time.time()
        wall = t1 - t0
        # absolute start/end (Unix seconds) let benchmarks relate the CASA call to its task's timeline
        rec = {"task": task, "stage": self.stage, "imagename": Path(str(kw.get("imagename", ""))).name,
               "wall_s": round(wall, 3), "start_unix": round(t0, 3), "end_unix": round(t1, 3),
               "peak_rss_mb": round(mem.peak / 2**20, 1)}
        if progress.major:
            rec.update(major_cycles=progress.major, iterations=progress.iterations,
                       peak_residual=progress.peak_residual, stopped=progress.stopped)
        self.calls.append(rec)
        with open(self.working / naming.CASA_COMMANDS, "a") as f:
            f.write(f"# {self.stage}: {wall:.1f} s, peak RSS {rec['peak_rss_mb']} MB\n{cmd}\n")
        log.info("CASA %s done in %.1f s (peak RSS %.0f MB)", task, wall, rec["peak_rss_mb"])
        return out

    def tool(self, call: str, **kw) -> None:
        """Record a casatools call made directly (not a task), as a comment line of
        casa_commands.log: the log stays a script of tasks, and says every CASA call."""
        cmd = f"{call}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kw.items()) + ")"
        log.info("CASA tool %s", cmd)
        with open(self.working / naming.CASA_COMMANDS, "a") as f:
            f.write(f"# {self.stage}: casatools {cmd}\n")

    def records(self) -> tuple[dict, ...]:
        """The call records so far."""
        return tuple(dict(c) for c in self.calls)
