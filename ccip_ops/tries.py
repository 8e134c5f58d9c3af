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
it neither moves its images nor writes a result, and raises :class:`SupersededTryError`.
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from .exceptions import CcipError
from .runtree import RunTree, read_json, remove, write_json


class SupersededTryError(CcipError):
    """A later try of the same group has started: this try's work is discarded."""


def claim_path(tree: RunTree, label: str) -> Path:
    return tree.working / "tries" / f"{label}.owner.json"


def scratch(tree: RunTree, label: str, try_number: int) -> Path:
    return tree.working / "tries" / label / f"try{try_number}"


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
