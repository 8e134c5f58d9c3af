"""The fan-in after the mapped imaging tasks: which groups go on, which failed, and the per-group loop
of stages 8-10, run on several groups at once (:func:`parallel_map`).

One place for each rule: a group's outcome is read from its result files (:func:`imaging_outcomes`;
a result is taken only when it was written by the group's latest try, :func:`ccip_ops.tries.accepted`),
the failed groups are :attr:`FanIn.failed`, and "no spw group left" is :func:`require_groups`.
Every function writes the fan-in state to ``working/fanin.json``, so the weblog shows it whatever
failed later.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Iterable

from . import groupworkers, tries

from .exceptions import NothingLeftError
from .model import FanIn, GroupFailure, ImagingResult, ImagingTarget
from .runtree import RunTree, read_json, write_json

log = logging.getLogger("ccip")
NO_RESULT = "the task ended without a result"


def imaging_outcomes(tree: RunTree, targets: Iterable[ImagingTarget], missing_is_failure: bool = True
                     ) -> tuple[dict[str, ImagingResult], list[GroupFailure]]:
    """({label: result} of the groups whose imaging succeeded, the failures), from the result files."""
    ok, failed = {}, []
    for t in targets:
        res = read_json(tree.result_json(t.label))
        if res is not None and tries.accepted(tree, t.label, tries.token_of(res)):
            ok[t.label] = ImagingResult.from_json(res)
            continue
        if res is not None:
            failed.append(GroupFailure(t.group, t.label, superseded(tree, t.label, res)))
            continue
        err = read_json(tree.failure_json(t.label))
        if err is not None or missing_is_failure:
            failed.append(GroupFailure(t.group, t.label, (err or {}).get("error") or NO_RESULT))
    return ok, failed


def superseded(tree: RunTree, label: str, res: dict) -> str:
    o = tries.owner(tree, label) or {}
    return (f"the result on disk is from try {((res.get('qa') or {}).get('try') or {}).get('number', '?')}, "
            f"not from the latest try {o.get('try')}: not trusted")


def save(tree: RunTree, fan: FanIn) -> FanIn:
    write_json(tree.fanin_json, fan.to_json())
    return fan


def load(tree: RunTree) -> FanIn | None:
    d = read_json(tree.fanin_json)
    return FanIn.from_json(d) if d is not None else None


def require_groups(fan: FanIn, what: str) -> FanIn:
    """Raise :class:`NothingLeftError` when no group is left after ``what``."""
    if not fan.results:
        raise NothingLeftError(f"{what}: no spw group left: " + "; ".join(f"{f.group}: {f.error}" for f in fan.failed))
    return fan


def collect(tree: RunTree, targets: Iterable[ImagingTarget], results: Iterable[ImagingResult | None]) -> FanIn:
    """Start of the fan-in: the results the imaging tasks returned (or, when a result did not come
    through, the complete one on disk), and the failures of the others."""
    targets = tuple(targets)
    returned = {r.label: r for r in results if r is not None and r.status == "ok"}
    for label, r in list(returned.items()):  # the returned result must be the one on disk, of the latest try
        token = tries.token_of(r.to_json())
        if not (tries.accepted(tree, label, token) and tries.token_of(read_json(tree.result_json(label))) == token):
            del returned[label]
    on_disk, failed = imaging_outcomes(tree, [t for t in targets if t.label not in returned])
    ok = {**on_disk, **returned}
    fan = save(tree, FanIn(targets=targets, results=tuple(ok[t.label] for t in targets if t.label in ok),
                           failed=tuple(failed)))
    return require_groups(fan, "every spw group failed")


def for_each_group(tree: RunTree, fan: FanIn, step: str, fn: Callable[[RunTree, ImagingResult], ImagingResult],
                   workers: int = 1) -> FanIn:
    """``fn`` on every group still going, ``workers`` groups at once (separate processes when more
    than one: :mod:`ccip_ops.groupworkers`); a group that fails here is dropped with its error."""
    out, failed = [], list(fan.failed)
    items = [(fn, tree, r.to_json()) for r in fan.results]  # the typed values travel as their JSON
    for r, (ok, value) in zip(fan.results, groupworkers.parallel_map(_on_group, items, workers)):
        if ok:
            out.append(ImagingResult.from_json(value))
        else:  # one group's failure must not stop the others
            log.error("%s failed for spw group %s: %s", step, r.group, value)
            failed.append(GroupFailure(r.group, r.label, str(value), stage=step))
    fan = save(tree, replace(fan, results=tuple(out), failed=tuple(failed)))
    return require_groups(fan, step)


def _on_group(fn, tree: RunTree, result: dict) -> dict:
    return fn(tree, ImagingResult.from_json(result)).to_json()


def qa_score(fan: FanIn) -> float:
    """The QA score of a per-group fan-in stage: the share of the run's groups still going."""
    return len(fan.results) / max(len(fan.results) + len(fan.failed), 1)


def notes(fan: FanIn) -> str:
    return f"{len(fan.results)} groups" + (f", {len(fan.failed)} failed" if fan.failed else "")
