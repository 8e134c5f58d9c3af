"""Reading a MeasurementSet with CASA's table and msmetadata tools: opened and closed in one place.

``with msmetadata(vis) as md: ...`` and ``with table(path) as tb: ...`` close the tool also when
the read fails, so a failed stage never leaves a table lock behind for its retry.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from . import casa_env


@contextlib.contextmanager
def msmetadata(vis: str | Path):
    md = casa_env.tools().msmetadata()
    md.open(str(vis))
    try:
        yield md
    finally:
        md.close()


@contextlib.contextmanager
def table(path: str | Path, nomodify: bool = True):
    tb = casa_env.tools().table()
    tb.open(str(path), nomodify=nomodify)
    try:
        yield tb
    finally:
        tb.close()


def columns(path: str | Path) -> list[str]:
    with table(path) as tb:
        return list(tb.colnames())
