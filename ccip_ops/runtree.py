"""Where a run's files live (DESIGN.md §3.2), and the one way the run's own JSON files are written.

A run's tree is ``CCIP_WORK_ROOT/<field_id>/<run_id>/`` with ``working/``, ``products/`` and
``html/``. :class:`RunTree` names the run's bookkeeping files (the stage records, the targets,
the fan-in state, one result per spw group); :func:`write_json` writes any of them atomically
(a temporary name, then a rename), so a reader never sees half a file.

A run id names one folder and one run only: ids whose folder names would be the field folder
itself or hidden (``.``, ``..``, ``.x``) are refused, and the first run to make a tree claims it
(``.run_id`` holds its id, created exclusively): another run id that maps to the same folder after
sanitising (``a:b``, ``a+b`` and ``a_b`` all become ``a_b``) is refused by name instead of sharing
the first run's files. :meth:`RunTree.served` is the one containment rule of the weblog plugin.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import naming, settings
from .exceptions import InputError


def check_field_id(field_id) -> str:
    if not naming.is_field_id(field_id):
        raise InputError(
            f"field id {field_id!r} does not match the VLASS tile/phase-centre pattern "
            "T<nn>t<nn>.J<hhmmss>[+-]<ddmmss>, e.g. T10t02.J005000-023000")
    return field_id


RUN_ID_FILE = ".run_id"
MAX_RUN_ID = 250


def check_run_id(run_id) -> str:
    """The run id's folder name, or InputError when it cannot name a run folder of its own."""
    if not isinstance(run_id, str) or not run_id or len(run_id) > MAX_RUN_ID or "\x00" in run_id:
        raise InputError(f"run id {str(run_id)[:80]!r} must be a string of 1-{MAX_RUN_ID} characters")
    folder = naming.run_folder(run_id)
    if folder.startswith("."):
        raise InputError(f"run id {run_id!r} would name the folder {folder!r} (the field folder itself or a "
                         "hidden one): a run id may not start with '.'")
    return folder


def field_folder(archive_root: str | Path, field_id: str) -> Path:
    """A field's folder in the archive: the field id names a folder, never a path."""
    return Path(archive_root) / check_field_id(field_id)


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=indent, default=str))
    os.replace(tmp, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write text to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_json(path: str | Path, default=None):
    """The JSON in ``path``, or ``default`` when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


@dataclass(frozen=True)
class RunTree:
    root: Path
    run_id: str | None = field(default=None, compare=False)  # set by for_run: make() claims the tree

    @classmethod
    def for_run(cls, field_id: str, run_id: str, root: Path | None = None) -> "RunTree":
        check_field_id(field_id)
        tree = cls((root or settings.work_root()) / field_id / check_run_id(run_id), run_id)
        tree.check_owner()
        return tree

    def owner(self) -> str | None:
        """The run id that claimed this tree, or None."""
        try:
            return (self.root / RUN_ID_FILE).read_text()
        except OSError:
            return None

    def check_owner(self) -> None:
        owner = self.owner()
        if self.run_id is not None and owner is not None and owner != self.run_id:
            raise InputError(f"run id {self.run_id!r} maps to the run folder {self.root}, which belongs to run "
                             f"{owner!r}: give the run an id that differs in more than punctuation")

    def claim(self) -> None:
        """Record this tree's run id, exclusively; InputError when another run holds it."""
        if self.run_id is None:
            return
        try:
            fd = os.open(self.root / RUN_ID_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self.check_owner()
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(self.run_id)

    # -- folders ---------------------------------------------------------------------------------
    @property
    def working(self) -> Path:
        return self.root / "working"

    @property
    def products(self) -> Path:
        return self.root / "products"

    @property
    def html(self) -> Path:
        return self.root / "html"

    @property
    def results(self) -> Path:
        return self.working / "results"

    # -- the run's own files -----------------------------------------------------------------------
    @property
    def stages_json(self) -> Path:
        """One record per stage: status, time, notes, QA score, the stage's data for its weblog page."""
        return self.working / "stages.json"

    def stage_data(self, step: str) -> Path:
        """What a stage leaves for its weblog page and for later stages (``working/stages/<step>.json``)."""
        return self.working / "stages" / f"{step}.json"

    @property
    def targets_json(self) -> Path:
        """The imaging targets of stage 6 and the groups it skipped or rejected."""
        return self.stage_data("editimlist_ccip")

    @property
    def fanin_json(self) -> Path:
        """The fan-in state after the last fan-in stage that ran."""
        return self.working / "fanin.json"

    @property
    def run_params_json(self) -> Path:
        return self.products / "run_params.json"

    @property
    def report_json(self) -> Path:
        return self.html / "report.json"

    def result_json(self, label: str) -> Path:
        """A group's imaging result: complete or absent."""
        return self.results / f"{label}.json"

    def failure_json(self, label: str) -> Path:
        return self.results / f"{label}.failed.json"

    # -- helpers ---------------------------------------------------------------------------------
    def make(self) -> "RunTree":
        self.root.mkdir(parents=True, exist_ok=True)
        self.claim()
        for d in (self.working, self.products, self.html, self.results, self.working / "stages"):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def served(self, path: str, folders: tuple[str, ...] = ("html", "products")) -> Path | None:
        """The file ``path`` (relative to the tree; a folder means its ``index.html``) when it resolves,
        symbolic links followed, to a regular file inside one of ``folders``; else None."""
        root = self.root.resolve()
        f = self.root / path
        if f.is_dir():
            f = f / "index.html"
        f = f.resolve()
        if not any(f.is_relative_to(root / d) for d in folders) or not f.is_file():
            return None
        return f

    def abs(self, rel: str) -> Path:
        return self.root / rel

    def rel(self, path: str | Path) -> str:
        return str(Path(path).resolve().relative_to(self.root.resolve()))


def remove(path: str | Path) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
