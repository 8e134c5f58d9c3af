"""CASA's log, forwarded to the task log while a CASA call runs (issue 17).

A CASA task runs for hours at VLASS size (tclean iter3) and writes what it does only to its own
log file (``working/logs/<stage>.casa.log``), which the UI cannot reach. :class:`CasaLogTail` is a
thread that follows that file during the call and forwards, as they are written:

- the progress an operator needs: major cycle n, iterations done, peak residual, and the
  iteration-sequence stage of the call (``iter0`` .. ``iter3``, from its ``imagename``);
- every WARN and SEVERE line (multi-line messages joined), none dropped: a few known-harmless
  ones are downgraded to INFO, saying so once per process (:data:`HARMLESS`); the stale
  leap-second table of the pinned ``casadata`` becomes one clear WARNING (:data:`LEAP_SECOND`);
- a heartbeat every ``interval`` seconds (``$CCIP_CASA_HEARTBEAT_S``, default 300): elapsed
  time, resident memory now and peak, and the progress so far.

The last lines are read once more when the call ends (:meth:`CasaLogTail.stop`), so nothing
written before the end is lost.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("ccip")

# (substring of the message, why it is harmless): logged at INFO, the reason said once
HARMLESS = (
    ("componentlist closed", "casatools' componentlist reports its own close() as a warning"),
    ("Please consider using specmode=mvc", "tclean's advice on the gridder and spectral mode, which the recipe "
                                           "fixes as NRAO's does"),
)
LEAP_SECOND = ("the CASA measures data (casadata's leap-second table TAI_UTC) are older than this "
               "observation: times and coordinates derived from UTC could be wrong by 1 s or more; "
               "update casadata to fix it")

_MAJOR = re.compile(r"Run Major Cycle (\d+)")
_DONE = re.compile(r"Completed (\d+) iterations")
_PEAK = re.compile(r"Absolute Peak residual within mask : ([-+0-9.eE]+), over full image : ([-+0-9.eE]+)")
_MINOR = re.compile(r"iters=\d+->\d+ \[(\d+)\].*peakres=[-+0-9.eE]+->([-+0-9.eE]+)")
_STOP = re.compile(r"Reached global stopping criterion : (.*)")
_ITER = re.compile(r"\.iter(\d+)$")
_said: set[str] = set()  # reasons already given in this process


@dataclass
class Progress:
    """What the log said so far about one call."""
    major: int = 0
    iterations: int = 0
    peak_residual: float | None = None
    stopped: str = ""
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = []
        if self.major:
            parts.append(f"major cycle {self.major}")
            parts.append(f"{self.iterations} iterations")
        if self.peak_residual is not None:
            parts.append(f"peak residual {self.peak_residual:.4g} Jy/beam")
        return ", ".join(parts)


def iteration_stage(kw: dict) -> str:
    """``iter<n>`` of a tclean call from its ``imagename``, else ''."""
    m = _ITER.search(Path(str(kw.get("imagename", ""))).name)
    return f"iter{m[1]}" if m else ""


def _split(line: str):
    """(priority, origin, message, continuation) of a CASA log line, or None."""
    parts = line.split("\t", 3)
    if len(parts) < 4:
        return None
    _, prio, origin, msg = parts
    return prio.strip(), origin.strip(), msg.strip(), origin.rstrip().endswith("+")


class CasaLogTail(threading.Thread):
    """Follows ``logfile`` from byte ``offset`` and forwards CASA's lines while ``task`` runs."""

    def __init__(self, logfile: Path, offset: int, task: str, label: str = "", rss=None,
                 interval: float = 300.0, poll: float = 0.5, logger: logging.Logger = log):
        super().__init__(daemon=True, name=f"casalog-{task}")
        self.logfile, self.offset, self.task = Path(logfile), offset, task
        self.what = f"{task} [{label}]" if label else task
        self.rss, self.interval, self.poll, self.log = rss, interval, poll, logger
        self.progress = Progress()
        self._stop_ev = threading.Event()
        self._buf = b""
        self._pending = None  # (prio, origin, [message lines]) of a multi-line message
        self._t0 = time.time()
        self._last_beat = self._t0

    # ---- reading ------------------------------------------------------------------------
    def read(self) -> None:
        """Forward the complete lines written since the last read."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        if not chunk:  # quiet: a held multi-line WARN/SEVERE is complete
            self._flush()
            return
        self.offset += len(chunk)
        data = self._buf + chunk
        *lines, self._buf = data.split(b"\n")
        for raw in lines:
            self._line(raw.decode(errors="replace"))

    def _line(self, line: str) -> None:
        p = _split(line)
        if p is None:
            return
        prio, origin, msg, cont = p
        if cont and self._pending and self._pending[0] == prio:
            self._pending[2].append(msg)
            return
        self._flush()
        if prio in ("WARN", "SEVERE"):
            self._pending = (prio, origin, [msg])
        else:
            self._info(msg)

    def _flush(self) -> None:
        if not self._pending:
            return
        prio, origin, msgs = self._pending
        self._pending = None
        text = " ".join(msgs)
        if "Leap second table" in text or "dUTC" in origin:
            if LEAP_SECOND in self.progress.warnings:  # once per call at WARNING, repeats at INFO
                self.log.info("CASA %s: the leap-second table warning again (CASA: %s)", self.what, text)
                return
            self.progress.warnings.append(LEAP_SECOND)
            self.log.warning("CASA %s: %s (CASA: %s)", self.what, LEAP_SECOND, text)
            return
        for key, why in HARMLESS:
            if key in text:
                if key not in _said:
                    _said.add(key)
                    self.log.info("CASA %s: %r is known to be harmless (%s): logged at INFO from now on",
                                  self.what, key, why)
                self.log.info("CASA %s (%s, harmless): %s", self.what, prio, text)
                return
        self.progress.warnings.append(text)
        (self.log.error if prio == "SEVERE" else self.log.warning)("CASA %s %s: %s", self.what, prio, text)

    def _info(self, msg: str) -> None:
        pr = self.progress
        if m := _MAJOR.search(msg):
            pr.major = int(m[1])
            self.log.info("CASA %s: major cycle %d, %d iterations done%s", self.what, pr.major,
                          pr.iterations, "" if pr.peak_residual is None else
                          f", peak residual {pr.peak_residual:.4g} Jy/beam")
        elif m := _PEAK.search(msg):
            pr.peak_residual = float(m[2])
        elif m := _MINOR.search(msg):
            pr.peak_residual = float(m[2])
        elif m := _DONE.search(msg):
            pr.iterations = int(m[1])
        elif m := _STOP.search(msg):
            pr.stopped = m[1].strip()
            self.log.info("CASA %s: stopped (%s) after %d iterations, major cycle %d", self.what,
                          pr.stopped, pr.iterations, pr.major)

    # ---- the heartbeat ------------------------------------------------------------------
    def beat(self) -> None:
        el = time.time() - self._t0
        mem = ""
        if self.rss is not None:
            now, peak = self.rss()
            mem = f", RSS {now / 2**20:.0f} MB (peak {peak / 2**20:.0f} MB)"
        prog = self.progress.text()
        self.log.info("CASA %s still running: %dh%02dm%02ds elapsed%s%s", self.what, el // 3600,
                      el % 3600 // 60, el % 60, mem, f"; {prog}" if prog else "")
        self._last_beat = time.time()

    # ---- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        while not self._stop_ev.wait(self.poll):
            self.read()
            if self.interval > 0 and time.time() - self._last_beat >= self.interval:
                self.beat()

    def stop(self) -> Progress:
        """End the thread, forward whatever is left, and return the progress."""
        self._stop_ev.set()
        if self.is_alive():
            self.join()
        self.read()
        if self._buf:
            self._line(self._buf.decode(errors="replace"))
            self._buf = b""
        self._flush()
        return self.progress
