"""Dataclasses that cross task boundaries, with a JSON round trip.

XCom carries only these, as small JSON: never arrays, never images. Paths inside them are
relative to the run tree (``CCIP_WORK_ROOT/<field_id>/<run_id>/``), so a result stays valid
whichever worker reads it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


# VLASS tile and phase-centre token, e.g. T10t02.J005000-023000 (DESIGN.md §3.1); names a folder, never a path
FIELD_ID_PATTERN = r"^T\d{2}t\d{2}\.J\d{6}[+-]\d{6}$"


class CcipInputError(ValueError):
    """Bad input: a deterministic failure that no retry can fix."""


def _from_dict(cls, d: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    return cls(**d)


@dataclass
class ImagingTarget:
    """One spw group to image (NRAO: one entry of clean_list_pending in VLASS-SE-CUBE mode)."""

    group: str  # the spw group as given, e.g. "2,3,4,5"
    spws: list[int]
    label: str  # "spw2_3_4_5": names the mapped task and the files
    imagename: str  # CASA image root in working/, e.g. "s7_0.<IMG>.spw2_3_4_5"
    reffreq_hz: float
    reffreq: str  # as tclean gets it, e.g. "2.244GHz"
    imsize: list[int]
    cell: str
    phasecenter: str
    field_ids: list[int]
    vis: str  # MS relative to the run tree
    masks: list[str]  # [tier1, tier2, "pb"], paths relative to the run tree
    flagpct: float  # flagged fraction of the group inside the 1 deg box
    imaging_mode: str = "VLASS-SE-CUBE"
    tclean_overrides: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | str) -> "ImagingTarget":
        return _from_dict(cls, json.loads(d) if isinstance(d, str) else dict(d))


@dataclass
class ImagingResult:
    """What one mapped imaging task leaves: complete or absent, never half."""

    target: ImagingTarget
    status: str  # "ok" | "failed"
    images: dict[str, str] = field(default_factory=dict)  # kind -> path relative to the run tree
    beam: dict[str, float] = field(default_factory=dict)  # bmaj/bmin arcsec, pa deg (Stokes I)
    qa: dict[str, Any] = field(default_factory=dict)
    tclean_calls: list[dict] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["target"] = self.target.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict | str) -> "ImagingResult":
        d = json.loads(d) if isinstance(d, str) else dict(d)
        d["target"] = ImagingTarget.from_json(d["target"])
        return _from_dict(cls, d)
