"""The typed values that cross task boundaries, frozen, each with its JSON round trip.

XCom carries only these, as small JSON: never arrays, never images. Paths inside them are
relative to the run tree (``CCIP_WORK_ROOT/<field_id>/<run_id>/``), so a value stays valid
whichever worker reads it. They are frozen: sequences are tuples and mappings read-only, and a
stage that has something to add returns a new value (``dataclasses.replace``).

    RunParams      what the run was asked for (trigger form, REST, ``ccip run``)
    RunContext     what the first stages found and made (PIMS, SE target, MS, masks)
    SeipTarget     the SE-CONT imaging target of SEIP_parameter.list
    ImagingTarget  one spw group to image            ImagingResult  what its imaging task left
    Plane          a group's plane-rejection verdict GroupFailure   a group that failed, and where
    FanIn          the fan-in state passed from stage to stage (8-12)
"""
from __future__ import annotations

import collections.abc
import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Mapping

_HINTS: dict[type, dict] = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _dump(v):
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _dump(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, Mapping):
        return {k: _dump(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_dump(x) for x in v]
    return v


def _plain(v):
    """A read-only mapping's content as plain (mutable) JSON values."""
    return json.loads(json.dumps(_dump(v), default=str))


def _load(tp, v):
    origin = typing.get_origin(tp)
    if tp is Any or v is None:
        return v
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _load(args[0], v) if len(args) == 1 else v
    if isinstance(tp, type) and is_dataclass(tp):
        if isinstance(v, tp):
            return v
        return tp.from_json(v)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], x) for x in v)
        return tuple(_load(a, x) for a, x in zip(args, v))
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


class Json:
    """Frozen value with a JSON round trip: ``from_json(x.to_json()) == x``."""

    def __post_init__(self):
        for name, tp in _hints(type(self)).items():
            v = getattr(self, name)
            origin = typing.get_origin(tp)
            if origin in (typing.Union, types.UnionType):
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                tp, origin = (args[0], typing.get_origin(args[0])) if len(args) == 1 else (tp, origin)
            if origin is tuple and isinstance(v, list):
                object.__setattr__(self, name, _load(tp, v))
            elif (tp is Mapping or origin is collections.abc.Mapping) and isinstance(v, dict):
                object.__setattr__(self, name, types.MappingProxyType(dict(v)))

    def to_json(self) -> dict:
        return _dump(self)

    @classmethod
    def from_json(cls, d: dict | str):
        d = json.loads(d) if isinstance(d, str) else dict(d)
        hints = _hints(cls)
        unknown = set(d) - set(hints)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        return cls(**{k: _load(hints[k], v) for k, v in d.items()})


@dataclass(frozen=True)
class RunParams(Json):
    """A run's parameters, checked (``runparams.check``): the same for the DAG and ``ccip run``."""

    field_id: str
    spw_groups: tuple[str, ...] | None = None  # overrides CCIP_parameter.list's spw
    imaging_overrides: Mapping[str, Any] = field(default_factory=dict)
    fault_groups: tuple[str, ...] = ()  # operators' drills: these groups fail their first try

    def plain(self) -> dict:
        """The parameters other than the field id, as recorded in run_params.json."""
        return {"spw_groups": None if self.spw_groups is None else list(self.spw_groups),
                "imaging_overrides": _plain(self.imaging_overrides), "fault_groups": list(self.fault_groups)}


@dataclass(frozen=True)
class SeipTarget(Json):
    """The VLASS-SE-CONT target of SEIP_parameter.list; restorepims predicts the SE model with it."""

    imaging_mode: str
    imagename: str
    phasecenter: str
    imsize: tuple[int, int]
    cell: str
    spw: str
    search_radius_arcsec: float
    heuristics: Mapping[str, Any] = field(default_factory=dict)
    cfcache: str = ""  # SEIP list's cfcache ('<wbawp>,<no-wbawp>' or one path), awproject modes only


@dataclass(frozen=True)
class RunContext(Json):
    """What stages 1-5 found and made; every later task starts from it."""

    field_id: str
    run_id: str
    root: str  # the run tree
    archive: str
    params: RunParams
    pims: str = ""  # PIMS copy, relative to the run tree
    name: str = ""  # PIMS name without .ms
    seip: SeipTarget | None = None
    vis: str = ""  # the transformed MS, relative to the run tree
    masks: tuple[str, ...] = ()  # [tier1, tier2] from restorepims, relative to the run tree

    @property
    def tree(self):
        from .runtree import RunTree

        from pathlib import Path

        return RunTree(Path(self.root))


@dataclass(frozen=True)
class ImagingTarget(Json):
    """One spw group to image (NRAO: one entry of clean_list_pending in VLASS-SE-CUBE mode)."""

    group: str  # the spw group as given, e.g. "2,3,4,5"
    spws: tuple[int, ...]
    label: str  # "spw2_3_4_5": names the mapped task and the files (naming.group_label)
    imagename: str  # CASA image root in working/, e.g. "s7_0.<IMG>.spw2_3_4_5" (naming.GroupNames)
    reffreq_hz: float
    reffreq: str  # as tclean gets it, e.g. "2.244GHz"
    imsize: tuple[int, int]
    cell: str
    phasecenter: str
    field_ids: tuple[int, ...]
    vis: str  # MS relative to the run tree
    masks: tuple[str, ...]  # [tier1, tier2, "pb"], paths relative to the run tree
    flagpct: float  # flagged fraction of the group inside the 1 deg box
    imaging_mode: str = "VLASS-SE-CUBE"
    tclean_overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self):
        from .naming import group_names

        return group_names(self.imagename)


@dataclass(frozen=True)
class Beam(Json):
    """A restoring beam: FWHM axes in arcsec, position angle in deg."""

    bmaj: float
    bmin: float
    pa: float = 0.0

    @classmethod
    def from_casa(cls, rec: Mapping, qa) -> "Beam":
        """From a CASA beam record ``{major, minor, positionangle}`` (any units; ``qa`` = casatools.quanta)."""
        return cls(bmaj=qa.convert(rec["major"], "arcsec")["value"], bmin=qa.convert(rec["minor"], "arcsec")["value"],
                   pa=qa.convert(rec["positionangle"], "deg")["value"])

    @property
    def area_arcsec2(self) -> float:
        return self.bmaj * self.bmin


@dataclass(frozen=True)
class ImagingResult(Json):
    """What one mapped imaging task leaves: complete or absent, never half; later stages return
    copies with their products added to ``images`` and their numbers to ``qa``."""

    target: ImagingTarget
    status: str  # "ok" | "failed"
    images: Mapping[str, str] = field(default_factory=dict)  # kind -> path relative to the run tree
    beam: Beam | None = None  # Stokes I, channel 0
    qa: Mapping[str, Any] = field(default_factory=dict)
    tclean_calls: tuple[Mapping[str, Any], ...] = ()  # CASA call records (task, imagename, times, memory)
    error: str | None = None
    pipeline: str = ""  # the version stamp of the code that imaged the group (ccip_ops.provenance.stamp)

    @property
    def label(self) -> str:
        return self.target.label

    @property
    def group(self) -> str:
        return self.target.group

    def adding(self, images: Mapping[str, str] | None = None, **qa) -> "ImagingResult":
        """A copy with more images and QA numbers."""
        from dataclasses import replace

        return replace(self, images={**self.images, **(images or {})}, qa={**self.qa, **qa})


@dataclass(frozen=True)
class GroupFailure(Json):
    group: str
    label: str
    error: str
    stage: str = "image_spw_group"

    def line(self) -> str:
        where = "" if self.stage == "image_spw_group" else f"{self.stage}: "
        return f"spw group {self.group} ({self.label}) failed: {where}{self.error}"


@dataclass(frozen=True)
class Plane(Json):
    """One imaged plane and the plane-rejection verdict of pbcor (PIPE-1800)."""

    group: str
    label: str
    spws: tuple[int, ...]
    freq: float
    bmaj: float
    bmin: float
    flagpct: float
    keep: bool = True
    why: tuple[str, ...] = ()
    expected_bmaj: float | None = None
    expected_bmin: float | None = None
    reference: bool = False


@dataclass(frozen=True)
class FanIn(Json):
    """The fan-in state: the groups that are still going, those that failed, and what was decided."""

    targets: tuple[ImagingTarget, ...]
    results: tuple[ImagingResult, ...] = ()
    failed: tuple[GroupFailure, ...] = ()
    planes: tuple[Plane, ...] = ()
    products: tuple[str, ...] = ()

    def failed_groups(self) -> list[str]:
        return [f.group for f in self.failed]

    def keep_of(self) -> dict[str, bool]:
        """{group: kept} after plane rejection (every group kept before it)."""
        return {p.group: p.keep for p in self.planes}
