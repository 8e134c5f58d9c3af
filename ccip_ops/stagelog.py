"""The record of each stage: status, wall time, notes and QA score, in ``working/stages.json``.

:func:`recording` wraps one stage: on success it records what the stage reported through the
:class:`Summary` it was given, on failure the exception. The weblog reads these records (and each
stage's own data file, ``RunTree.stage_data``), whatever failed.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from .runtree import RunTree, read_json, write_json


@dataclass
class Summary:
    """What a stage says about itself: notes for the weblog's table, a QA score (0..1) and the
    sub-scores it is the minimum of (:mod:`ccip_ops.heuristics.qa`)."""

    notes: str = ""
    qa: float | None = 1.0
    scores: list = field(default_factory=list)

    def set_scores(self, scores: list[dict]) -> None:
        """The sub-scores; the stage's score becomes their minimum (NRAO's convention)."""
        from .heuristics.qa import overall

        self.scores = list(scores)
        self.qa = overall(self.scores)


def record(tree: RunTree, step: str, status: str, seconds: float, notes: str = "", qa: float | None = None,
           scores: list | None = None) -> None:
    d = read_json(tree.stages_json, {})
    d[step] = {"status": status, "seconds": round(seconds, 2), "notes": notes, "qa": qa, "qa_scores": scores or []}
    write_json(tree.stages_json, d)


def record_scores(tree: RunTree, step: str, scores: list[dict]) -> None:
    """QA scores of a step that keeps no record of its own (the mapped imaging tasks, scored at the
    fan-in): its score and sub-scores, merged into its record."""
    from .heuristics.qa import overall

    d = read_json(tree.stages_json, {})
    d.setdefault(step, {}).update({"qa": overall(scores), "qa_scores": list(scores)})
    write_json(tree.stages_json, d)


@contextlib.contextmanager
def recording(tree: RunTree, step: str):
    """``with recording(tree, "transform") as s: ...; s.notes = ...``"""
    summary, t0 = Summary(), time.time()
    try:
        yield summary
    except BaseException as e:
        record(tree, step, "failed", time.time() - t0, f"{type(e).__name__}: {e}", 0.0)
        raise
    record(tree, step, "ok", time.time() - t0, summary.notes, summary.qa, summary.scores)


def records(tree: RunTree) -> dict:
    return read_json(tree.stages_json, {})
