"""The CASA log tailer (issue 17): progress, warnings and a heartbeat reach the task log while the
CASA call is still running. The log lines are CASA 6.7's own (tclean of a small MS); a thread
writes them into a growing file as CASA would, and the test checks what was forwarded *before*
the writer finished."""
from __future__ import annotations

import logging
import threading
import time

from ccip_ops import settings
from ccip_ops.stages import _casalog
from ccip_ops.stages._casalog import LEAP_SECOND, CasaLogTail, iteration_stage

O = "MeasTable::dUTC(Double) (file /source/casa6/casatools/casacore/measures/Measures/MeasTable.cc, line 4290)"
LINES = [
    "INFO\ttclean::::casa\t##### Begin Task: tclean             #####",
    f"SEVERE\t{O}\tLeap second table TAI_UTC seems out-of-date.",
    f"SEVERE\t{O}+\tUntil the table is updated (see the CASA documentation or your system admin),",
    f"SEVERE\t{O}+\ttimes and coordinates derived from UTC could be wrong by 1s or more.",
    "INFO\ttask_tclean::SynthesisImager::executeMajorCycle \t------- Run Major Cycle 1 -------",
    "INFO\ttask_tclean::SynthesisDeconvolver::initMinorCycle \t Absolute Peak residual within mask : 1.00064, "
    "over full image : 1.00064",
    "INFO\tSDAlgorithmBase::deconvolve \t[/w/img] iters=0->3 [3], model=0->0.271175, peakres=1.00064->0.729469, "
    "Reached cyclethreshold.",
    "INFO\tgrpcInteractiveCleanManager::mergeCycleExecutionRecord \tCompleted 3 iterations.",
    "INFO\ttask_tclean::SynthesisImager::executeMajorCycle \t------- Run Major Cycle 2 -------",
    "WARN\tcomponentlist::close\tcomponentlist closed",
    "WARN\tcomponentlist::close\tcomponentlist closed",
    "SEVERE\tSynthesisImagerVi2::selectData\tNo data selected for spw 7",
    "WARN\tSIImageStore::restore\tRestoring beam for channel 3 is missing",
    "INFO\ttclean::::casa\tReached global stopping criterion : iteration limit",
]


class Catch(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[tuple[float, int, str]] = []
        self.seen = threading.Condition()

    def emit(self, r):
        with self.seen:
            self.records.append((time.time(), r.levelno, r.getMessage()))
            self.seen.notify_all()

    def wait_for(self, text: str, timeout: float = 5.0) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: any(text in m for _, _, m in self.records), timeout)


def _logger():
    lg = logging.getLogger("ccip.test_casa_progress")
    lg.propagate, lg.level = False, logging.DEBUG
    h = Catch()
    lg.handlers[:] = [h]
    return lg, h


def test_lines_are_forwarded_while_the_call_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(_casalog, "_said", set())
    lg, h = _logger()
    logfile = tmp_path / "img.casa.log"
    logfile.write_text("2026-12-04 18:00:00\tINFO\tearlier::call\tan earlier call's line, not forwarded\n")
    tail = CasaLogTail(logfile, logfile.stat().st_size, "tclean", "iter2", rss=lambda: (300 * 2**20, 400 * 2**20),
                       interval=0.15, poll=0.02, logger=lg)
    tail.start()
    writer_done = None
    with open(logfile, "a") as f:
        for i, line in enumerate(LINES):
            f.write(f"2026-12-04 18:00:{i:02d}\t{line}\n")
            f.flush()
            if "Run Major Cycle 2" in line:
                # the call is still running: progress must be in the task log now
                assert h.wait_for("major cycle 2, 3 iterations done, peak residual 0.7295 Jy/beam"), h.records
                assert h.wait_for("still running"), h.records
            time.sleep(0.01)
        writer_done = time.time()
    progress = tail.stop()
    msgs = [(lvl, m) for _, lvl, m in h.records]
    before = [m for t, _, m in h.records if t < writer_done]
    assert any("major cycle 1" in m for m in before) and any("tclean [iter2]" in m for m in before)
    beat = next(m for _, m in msgs if "still running" in m)
    assert "RSS 300 MB (peak 400 MB)" in beat and "elapsed" in beat
    # the leap-second SEVERE (three lines) is one clear WARNING
    leap = [m for lvl, m in msgs if LEAP_SECOND in m]
    assert len(leap) == 1 and (logging.WARNING, leap[0]) in msgs and "seems out-of-date" in leap[0]
    # the unknown SEVERE and WARN arrive at their levels; the harmless one is downgraded, said once
    assert (logging.ERROR, "CASA tclean [iter2] SEVERE: No data selected for spw 7") in msgs
    assert (logging.WARNING, "CASA tclean [iter2] WARN: Restoring beam for channel 3 is missing") in msgs
    assert sum("known to be harmless" in m for _, m in msgs) == 1
    assert sum("componentlist closed" in m and lvl == logging.INFO for lvl, m in msgs) == 3
    assert not any("earlier call" in m for _, m in msgs)
    assert progress.major == 2 and progress.iterations == 3 and progress.stopped == "iteration limit"
    assert abs(progress.peak_residual - 0.729469) < 1e-9


def test_a_partial_last_line_and_a_held_warning_are_not_lost(tmp_path):
    lg, h = _logger()
    logfile = tmp_path / "x.casa.log"
    logfile.write_text("")
    tail = CasaLogTail(logfile, 0, "imsubimage", interval=0, poll=0.02, logger=lg)
    tail.start()
    with open(logfile, "a") as f:
        f.write("2026-12-04 18:00:00\tWARN\timsubimage\tfirst part\n")
        f.flush()
        # a WARN with no line after it is forwarded once the log is quiet, not at the end of the call
        assert h.wait_for("first part"), h.records
        f.write("2026-12-04 18:00:01\tSEVERE\timsubimage\tcut short")
    progress = tail.stop()
    assert (logging.ERROR, "CASA imsubimage SEVERE: cut short") in [(lvl, m) for _, lvl, m in h.records]
    assert progress.warnings == ["first part", "cut short"]


def test_iteration_stage_and_heartbeat_setting():
    assert iteration_stage({"imagename": "/w/s7_0.VLASS2.1.T10t02.J005000-023000.g0.IQUV.iter3"}) == "iter3"
    assert iteration_stage({"imagename": "/w/x.image"}) == ""
    assert settings.casa_heartbeat_s({}) == 300
    assert settings.casa_heartbeat_s({"CCIP_CASA_HEARTBEAT_S": "0"}) == 0
    for bad in ("-1", "soon", "nan"):
        try:
            settings.casa_heartbeat_s({"CCIP_CASA_HEARTBEAT_S": bad})
        except ValueError as e:
            assert "CCIP_CASA_HEARTBEAT_S" in str(e)
        else:
            raise AssertionError(bad)
