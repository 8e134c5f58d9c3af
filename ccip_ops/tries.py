"""Tries of one spw group's imaging kept apart: a retried try and an earlier one that still runs
(a worker thought dead, a task re-delivered by the broker) never write the same files, and only the
latest try's result is trusted.

- :func:`claim`: a try starts by recording itself (number and a random token) as the group's
  owner in ``working/tries/<label>.owner.json``; a later try replaces the record;
- the try writes every image into its own folder, ``working/tries/<label>/try<n>/``
  (:func:`scratch`);
- :func:`promote`: at the end, only while it still owns the group, it moves its images into
  ``working/`` under their names and writes the result (with its token) last;
- :func:`accepted`: ``collect`` and the weblog take a result only when its token is the owner's.

An earlier try that finishes after a later one has started finds that it no longer owns the group:
it neither moves its images nor writes a result, and raises :class:`SupersededTryError` (it looks
before each iteration step too, so a zombie stops at its next step).

A retry does not start the group over (issue 16: a task killed by a control-plane outage, a lost
worker): after each iteration step a try records a **checkpoint** in its folder
(:func:`checkpoint`: the step, the target's fingerprint, the masks and CASA calls so far), and the
step's images are never modified afterwards (the next step works on copies). A later try of the same
target (:func:`adopt`) copies the most advanced earlier checkpoint's images into its own folder and
goes on from the next step; the copy is checked against the checkpoint after it is made, so an
earlier try that still runs cannot hand over a half-made state. Once a try has promoted its images,
the earlier tries' folders are removed (:func:`discard_earlier`). A try that finished the group
(images promoted, result written) but whose task was not recorded as a success (its token expired
in an outage before it could report) is not redone either: the next try takes its result
(:func:`completed`) when the target and version are the same and every image is there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from .exceptions import CcipError
from .naming import parse_product
from .runtree import RunTree, read_json, remove, write_json


log = logging.getLogger("ccip")
CHECKPOINT = "checkpoint.json"


class SupersededTryError(CcipError):
    """A later try of the same group has started: this try's work is discarded."""


def claim_path(tree: RunTree, label: str) -> Path:
    return tree.working / "tries" / f"{label}.owner.json"


def scratch(tree: RunTree, label: str, try_number: int) -> Path:
    return tree.working / "tries" / label / f"try{try_number}"


def _earlier(tree: RunTree, label: str, try_number: int) -> list[tuple[int, Path]]:
    """(number, folder) of the group's tries before ``try_number`` that left a folder (:func:`scratch`)."""
    root = tree.working / "tries" / label
    found = [(d.name[len("try"):], d) for d in (root.glob("try*") if root.is_dir() else [])]
    return [(int(n), d) for n, d in found if n.isdigit() and int(n) < try_number]


def claim(tree: RunTree, label: str, try_number: int) -> str:
    """Make this try the group's owner; returns its token."""
    claim_path(tree, label).parent.mkdir(parents=True, exist_ok=True)
    token = f"{try_number}-{secrets.token_hex(8)}"
    write_json(claim_path(tree, label), {"try": try_number, "token": token, "started": time.time(),
                                         "pid": os.getpid()})
    return token


def owner(tree: RunTree, label: str) -> dict | None:
    return read_json(claim_path(tree, label))


def check(tree: RunTree, label: str, token: str) -> None:
    """SupersededTryError when another try owns the group now."""
    o = owner(tree, label) or {}
    if o.get("token") != token:
        raise SupersededTryError(f"spw group {label}: try {token.split('-')[0]} was superseded by try "
                                 f"{o.get('try')}; its images are discarded")


def promote(tree: RunTree, label: str, token: str, src: Path, prefix: str) -> list[str]:
    """Move this try's ``prefix.*`` images from ``src`` into ``working/`` (while it owns the group)."""
    check(tree, label, token)
    moved = []
    for p in sorted(src.glob(prefix + ".*")):
        dst = tree.working / p.name
        remove(dst)
        os.replace(p, dst)
        moved.append(p.name)
    return moved


def token_of(result_json: dict | None) -> str | None:
    return ((result_json or {}).get("qa") or {}).get("try", {}).get("token")


def accepted(tree: RunTree, label: str, token: str | None) -> bool:
    """Whether a result with ``token`` is the group owner's (a group without a claim: results from
    before tries were recorded are taken as they are)."""
    o = owner(tree, label)
    return o is None or (token is not None and o.get("token") == token)


def discard(path: Path) -> None:
    remove(path)
    parent = path.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()


def fingerprint(target_json: dict, stamp: str) -> str:
    """What a checkpoint may be resumed for: the same target (every imaging parameter) made by the
    same pipeline version."""
    return hashlib.sha256(json.dumps([target_json, stamp], sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint(src: Path, step: int, fp: str, try_number: int, **state) -> None:
    """Record that iteration ``step`` is complete in this try's folder ``src`` (atomically)."""
    write_json(src / CHECKPOINT, {"step": step, "fingerprint": fp, "try": try_number, "at": time.time(), **state})


def _iteration(name: str) -> int | None:
    """The iteration of a CCIP product in a try's folder (None for anything else)."""
    try:
        return parse_product(name).iteration
    except ValueError:
        return None


def _copy_state(src: Path, dst: Path, step: int) -> None:
    for p in sorted(src.iterdir()):
        n = _iteration(p.name)
        if p.name == CHECKPOINT or n is None or n > step:  # the earlier try's unfinished next step
            continue
        if p.is_dir():
            shutil.copytree(p, dst / p.name, copy_function=shutil.copy2)
        else:
            shutil.copy2(p, dst / p.name)


def adopt(tree: RunTree, label: str, try_number: int, fp: str, dst: Path) -> dict | None:
    """Copy the most advanced checkpoint of an earlier try of this target into ``dst`` (this try's
    empty folder); its record (with ``from_try``), or None when there is none to resume from."""
    for _ in range(3):  # an earlier try still running may complete a step while we copy: once more
        found = []
        for n, d in _earlier(tree, label, try_number):
            ck = read_json(d / CHECKPOINT)
            if ck and ck.get("fingerprint") == fp:
                found.append((ck["step"], n, d, ck))
        if not found:
            return None
        step, n, src, ck = max(found, key=lambda f: (f[0], f[1]))
        try:
            _copy_state(src, dst, step)
            same = read_json(src / CHECKPOINT) == ck
        except OSError as e:  # its folder removed under us (the earlier try ended): look again
            log.info("spw group %s: try %d's checkpoint went away while copied (%s)", label, n, e)
            same = False
        if same:
            return {**ck, "from_try": n}
        for p in list(dst.iterdir()):
            remove(p)
    return None


def discard_earlier(tree: RunTree, label: str, try_number: int) -> None:
    """Remove the folders of the tries before ``try_number`` (killed ones leave theirs behind; one
    still running finds its folder gone and stops)."""
    for _, d in _earlier(tree, label, try_number):
        remove(d)


def completed(tree: RunTree, label: str, fp: str, result_json: dict | None) -> dict | None:
    """The group's result when the current owner try finished it: status ok, written by the owner
    (its token), for this fingerprint, every image it names present. None otherwise."""
    o = owner(tree, label) or {}
    t = ((result_json or {}).get("qa") or {}).get("try") or {}
    if not result_json or result_json.get("status") != "ok" or not o.get("token") or t.get("token") != o["token"]:
        return None
    if t.get("fingerprint") != fp:
        return None
    images = result_json.get("images") or {}
    if not images or not all(tree.abs(p).exists() for p in images.values()):
        return None
    return result_json
