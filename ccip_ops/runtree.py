"""Where a run's files live (DESIGN.md §3.2).

``CCIP_ARCHIVE_ROOT`` (read-only inputs) and ``CCIP_WORK_ROOT`` come from the environment;
they default to ``<project>/.data/archive`` and ``<project>/.data/work``. A run's tree is
``CCIP_WORK_ROOT/<field_id>/<run_id>/`` with ``working/``, ``products/`` and ``html/``.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .model import FIELD_ID_PATTERN, CcipInputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIELD_ID_RE = re.compile(FIELD_ID_PATTERN)


def archive_root() -> Path:
    return Path(os.environ.get("CCIP_ARCHIVE_ROOT", PROJECT_ROOT / ".data" / "archive")).resolve()


def work_root() -> Path:
    return Path(os.environ.get("CCIP_WORK_ROOT", PROJECT_ROOT / ".data" / "work")).resolve()


def check_field_id(field_id: str) -> str:
    if not isinstance(field_id, str) or not FIELD_ID_RE.match(field_id):
        raise CcipInputError(
            f"field id {field_id!r} does not match the VLASS tile/phase-centre pattern "
            "T<nn>t<nn>.J<hhmmss>[+-]<ddmmss>, e.g. T10t02.J005000-023000")
    return field_id


def safe_run_id(run_id: str) -> str:
    """A run id as a folder name: Airflow run ids carry ':' and '+'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


@dataclass(frozen=True)
class RunTree:
    root: Path

    @classmethod
    def for_run(cls, field_id: str, run_id: str, root: Path | None = None) -> "RunTree":
        check_field_id(field_id)
        return cls((root or work_root()) / field_id / safe_run_id(run_id))

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

    def make(self) -> "RunTree":
        for d in (self.working, self.products, self.html, self.results):
            d.mkdir(parents=True, exist_ok=True)
        return self

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
