"""Calling CASA tasks from a stage: logged, timed, memory-sampled, and recorded.

Every call is appended to ``working/casa_commands.log`` as the command that ran, with all its
parameters (what NRAO exports as ``casa_commands.log``), and to the caller's list of call
records (task, imagename, wall time, absolute start and end, peak resident memory of the
process during the call), which travel in the results.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from .. import casa_env, naming

log = logging.getLogger("ccip")


class _PeakRSS:
    def __init__(self, interval: float = 0.2):
        import psutil

        self._p = psutil.Process()
        self.peak = self._p.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval):
        while not self._stop.wait(interval):
            try:
                self.peak = max(self.peak, self._p.memory_info().rss)
            except Exception:  # pragma: no cover - process is going away
                return

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._p.memory_info().rss)


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

    def _forward_casa_log(self, offset: int) -> None:
        """Copy CASA's WARN/SEVERE lines of this call into the task log."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                for line in f.read().decode(errors="replace").splitlines():
                    if "\tSEVERE\t" in line and "Leap second table" not in line and "dUTC" not in line:
                        log.error("CASA: %s", line.split("\t", 3)[-1])
                    elif "\tWARN\t" in line:
                        log.warning("CASA: %s", line.split("\t", 3)[-1])
        except OSError:
            pass

    def __call__(self, task: str, **kw):
        tk = casa_env.tasks()
        fn = getattr(tk, task)
        cmd = f"{task}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kw.items()) + ")"
        log.info("CASA %s", cmd)
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        t0 = time.time()
        try:
            # CASA pages temporary images (TempLattice*) into the current directory: keep them in
            # the run's working tree, as NRAO runs in its working directory
            with contextlib.chdir(self.working), _PeakRSS() as mem:
                out = fn(**kw)
        finally:
            self._forward_casa_log(offset)
        t1 = time.time()
        wall = t1 - t0
        # absolute start/end (Unix seconds) let benchmarks relate the CASA call to its task's timeline
        rec = {"task": task, "stage": self.stage, "imagename": Path(str(kw.get("imagename", ""))).name,
               "wall_s": round(wall, 3), "start_unix": round(t0, 3), "end_unix": round(t1, 3),
               "peak_rss_mb": round(mem.peak / 2**20, 1)}
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
