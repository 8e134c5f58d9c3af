"""The rules for the values of a run's inputs: one function per kind of value, each raising
:class:`InputError` with the ``source`` it is given (``<file>: <key>`` or ``run parameter <name>``),
the value and the rule. Pure Python: the first task checks everything before any CASA work.

- ``imagename``: one file-name component (letters, digits, ``. _ + -``; no path separator, no
  ``..``, not hidden), so every image of the run stays in its ``working/``;
- ``phasecenter``: ``<frame> <ra> <dec>``, RA as ``hh:mm:ss.s``, ``hhhmmmss.ss`` or ``<x>deg``,
  Dec as ``±dd.mm.ss.s``, ``±ddDmmMss.s`` or ``<x>deg``, each field within its range (CASA would
  read ``-02:30:00`` as hours, and wrap ``25:00:00``);
- ``imsize``: an int or a list of one or two ints within [64, 16384] (no float, no bool);
- ``cell``: ``<number>arcsec|arcmin|deg`` (or a list of one or two such), within 0.001-3600 arcsec;
- ``spw`` groups: distinct groups of distinct ASCII-digit spw ids (``[0-9]``, full match).
"""
from __future__ import annotations

import math
import re
from typing import Any

from .exceptions import InputError

IMSIZE_MIN, IMSIZE_MAX = 64, 16384
CELL_MIN_ARCSEC, CELL_MAX_ARCSEC = 0.001, 3600.0
IMAGENAME_MAX = 200
IMAGENAME_RE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*", re.ASCII)
GROUP_RE = re.compile(r"[0-9]+(,[0-9]+)*", re.ASCII)
FRAMES = ("J2000", "ICRS", "B1950", "GALACTIC")
_NUM = r"[0-9]+(?:\.[0-9]*)?"
_RA_FORMS = (re.compile(rf"(?P<h>[0-9]{{1,2}}):(?P<m>[0-9]{{1,2}}):(?P<s>{_NUM})", re.ASCII),
             re.compile(rf"(?P<h>[0-9]{{1,2}})h(?P<m>[0-9]{{1,2}})m(?P<s>{_NUM})s?", re.ASCII))
_DEC_FORMS = (re.compile(rf"(?P<sign>[+-]?)(?P<d>[0-9]{{1,2}})\.(?P<m>[0-9]{{1,2}})\.(?P<s>{_NUM})", re.ASCII),
              re.compile(rf"(?P<sign>[+-]?)(?P<d>[0-9]{{1,2}})d(?P<m>[0-9]{{1,2}})m(?P<s>{_NUM})s?", re.ASCII))
_DEG = re.compile(rf"(?P<sign>[+-]?)(?P<x>{_NUM})deg", re.ASCII)
_CELL = re.compile(rf"(?P<x>{_NUM}|\.[0-9]+)(?P<unit>arcsec|arcmin|deg)", re.ASCII)
_CELL_UNITS = {"arcsec": 1.0, "arcmin": 60.0, "deg": 3600.0}


def _refuse(source: str, value, rule: str):
    shown = repr(value) if len(repr(value)) < 200 else repr(value)[:200] + "..."
    raise InputError(f"{source} = {shown} is invalid: {rule}")


def imagename(value: Any, source: str = "imagename") -> str:
    if not isinstance(value, str):
        _refuse(source, value, "must be a string")
    if "/" in value or "\\" in value or ".." in value:
        _refuse(source, value, "must be one file name: no '/', '\\' or '..' (images are written in the run's working/)")
    if len(value) > IMAGENAME_MAX or not IMAGENAME_RE.fullmatch(value):
        _refuse(source, value, f"must be 1-{IMAGENAME_MAX} ASCII letters, digits and '._+-', not starting with '.'")
    return value


def _ra_hours(s: str) -> float | None:
    for rx in _RA_FORMS:
        m = rx.fullmatch(s)
        if m:
            h, mi, se = int(m["h"]), int(m["m"]), float(m["s"])
            if h >= 24 or mi >= 60 or se >= 60:
                return math.nan
            return h + mi / 60 + se / 3600
    m = _DEG.fullmatch(s)
    if m and not m["sign"]:
        x = float(m["x"])
        return x / 15 if x < 360 else math.nan
    return None


def _dec_deg(s: str) -> float | None:
    for rx in _DEC_FORMS:
        m = rx.fullmatch(s)
        if m:
            d, mi, se = int(m["d"]), int(m["m"]), float(m["s"])
            if mi >= 60 or se >= 60:
                return math.nan
            v = d + mi / 60 + se / 3600
            return (-v if m["sign"] == "-" else v) if v <= 90 else math.nan
    m = _DEG.fullmatch(s)
    if m:
        v = float(m["x"])
        return (-v if m["sign"] == "-" else v) if v <= 90 else math.nan
    return None


def phasecenter(value: Any, source: str = "phasecenter") -> tuple[float, float]:
    """(RA h, Dec deg) of a checked phase centre."""
    if not isinstance(value, str):
        _refuse(source, value, "must be a string '<frame> <ra> <dec>'")
    parts = value.split()
    if len(parts) != 3:
        _refuse(source, value, "must be '<frame> <ra> <dec>', e.g. 'J2000 00:50:00.000 -02.30.00.000'")
    frame, ra, dec = parts
    if frame.upper() not in FRAMES:
        _refuse(source, value, f"frame {frame!r} is not one of {', '.join(FRAMES)}")
    h = _ra_hours(ra)
    if h is None or math.isnan(h):
        _refuse(source, value, f"RA {ra!r} must be hh:mm:ss.s or hhhmmmss.s with h < 24, m, s < 60, "
                               "or 0 <= x < 360 deg")
    d = _dec_deg(dec)
    if d is None or math.isnan(d):
        hint = " (':' in a declination means hours to CASA: write -02.30.00)" if ":" in dec else ""
        _refuse(source, value, f"Dec {dec!r} must be ±dd.mm.ss.s or ±ddDmmMss.s with |Dec| <= 90 deg, "
                               f"m, s < 60, or ±x deg{hint}")
    return h, d


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def imsize(value: Any, source: str = "imsize") -> list[int]:
    """``[nx, ny]`` of a checked imsize (an int n is ``[n, n]``)."""
    vals = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not 1 <= len(vals) <= 2 or not all(_int(v) for v in vals):
        _refuse(source, value, "must be an integer or a list of one or two integers (not 512.0)")
    if not all(IMSIZE_MIN <= v <= IMSIZE_MAX for v in vals):
        _refuse(source, value, f"each size must be within [{IMSIZE_MIN}, {IMSIZE_MAX}] pixels")
    return [vals[0], vals[-1]]


def cell(value: Any, source: str = "cell") -> str:
    """The (first) cell of a checked cell value, as given."""
    vals = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not 1 <= len(vals) <= 2 or not all(isinstance(v, str) for v in vals):
        _refuse(source, value, "must be a string such as '0.6arcsec' or a list of one or two such")
    for v in vals:
        m = _CELL.fullmatch(v)
        if not m:
            _refuse(source, value, f"{v!r} is not <number><arcsec|arcmin|deg>, e.g. '0.6arcsec'")
        arcsec = float(m["x"]) * _CELL_UNITS[m["unit"]]
        if not CELL_MIN_ARCSEC <= arcsec <= CELL_MAX_ARCSEC:
            _refuse(source, value, f"{v!r} must be within {CELL_MIN_ARCSEC}-{CELL_MAX_ARCSEC:g} arcsec")
    return vals[0]


def spw_groups(value: Any, source: str = "spw") -> list[str]:
    """A list of distinct spw groups, each comma-separated distinct ASCII-digit spw ids."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{source}: spw must be a list of spw groups such as ['2', '3,4'], "
                         f"got {type(value).__name__} {value!r}"[:400])
    if not value:
        raise InputError(f"{source}: spw is an empty list: no spw group to image")
    seen: dict[tuple, str] = {}
    for g in value:
        if not isinstance(g, str) or not GROUP_RE.fullmatch(g):
            raise InputError(
                f"{source}: spw group {g!r} is not comma-separated integer spw ids "
                "(channel '2:0~15' and range '1~4' selections are not allowed)")
        ids = [int(s) for s in g.split(",")]
        if len(set(ids)) != len(ids):
            raise InputError(f"{source}: spw group {g!r} names an spw twice")
        key = tuple(sorted(ids))
        if key in seen:
            raise InputError(f"{source}: spw group {g!r} is given twice ({seen[key]!r}): two imaging "
                             "tasks would write the same images")
        seen[key] = g
    return list(value)


_SPW_SEL = re.compile(r"[0-9]+(~[0-9]+)?(,[0-9]+(~[0-9]+)?)*", re.ASCII)


MAX_SPW_ID = 1023  # far above any VLA setup (VLASS: spws 0-17); bounds what a range may expand to


def spw_selection(value: Any, source: str = "spw") -> str:
    """The SEIP ``spw``: a CASA spw selection of ids and ranges (``'2~17'``, ``'2,3,5~9'``) or a list of
    such strings; returned as one selection string. The one rule for it: :func:`spw_ids` expands it."""
    sel = ",".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value
    if not isinstance(sel, str) or not _SPW_SEL.fullmatch(sel):
        _refuse(source, value, "must be spw ids and ranges such as '2~17' or '2,3,5~9' (or a list of such)")
    for tok in sel.split(","):
        a, _, b = tok.partition("~")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            _refuse(source, value, f"the range {tok!r} runs backwards")
        if hi > MAX_SPW_ID:
            _refuse(source, value, f"spw id {hi} is above {MAX_SPW_ID}")
    return sel


def spw_ids(value: Any, source: str = "spw") -> set[int]:
    """The spw ids a SEIP ``spw`` selects (checked by :func:`spw_selection`)."""
    out: set[int] = set()
    for tok in spw_selection(value, source).split(","):
        a, _, b = tok.partition("~")
        out.update(range(int(a), int(b or a) + 1))
    return out


def bounded(value: Any, lo: float, hi: float, source: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        _refuse(source, value, f"must be a number within [{lo:g}, {hi:g}]")
    return value


def plane_reject(value: dict, source: str = "vlass_plane_reject_ms") -> dict:
    known = {"apply": bool, "exclude_spw": str, "flagpct_thresh": (int, float), "nfield_thresh": int}
    for k, v in value.items():
        if k not in known:
            _refuse(source, value, f"unknown key {k!r}; known: {sorted(known)}")
        if not isinstance(v, known[k]) or (isinstance(v, bool) and known[k] is not bool):
            _refuse(source, value, f"{k!r} has the wrong type {type(v).__name__}")
    return value
