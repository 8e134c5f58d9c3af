"""SEIP/CCIP parameter lists (spec/ccip_reference.md §3.1), and the checks of their values.

Grammar: ``key = value`` lines; ``#`` lines and lines without ``=`` are ignored; a line is
split at its first ``=``; the value is a Python literal read with ``ast.literal_eval``
(never evaluated as code), after its size and nesting depth are bounded (a crafted value cannot
exhaust the parser). Unknown keys, values of the wrong type and unparsable values are refused
with the file name, the line number and the key.

:func:`check_seip` and :func:`check_ccip` check every value a list's later stages rely on
(``imagename``, ``phasecenter``, ``imsize``, ``cell``, ``spw``, ``imaging_mode``) with the rules of
:mod:`ccip_ops.listvalues`; the first task runs them on the archive's lists before it copies
anything, and stages 2 and 6 run them again on their copies.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from . import listvalues
from .exceptions import InputError

_STR = (str,)
_NUM = (int, float)
# the hif_editimlist inputs (and the two keys read from the dictionary directly), with types
KEYS: dict[str, tuple] = {
    "imaging_mode": _STR, "imagename": _STR, "phasecenter": _STR, "spw": (list, str),
    "imsize": (list, int), "cell": (list, str), "niter": (int,), "cycleniter": (int,),
    "cyclefactor": _NUM, "nmajor": (int,), "nterms": (int,), "deconvolver": _STR,
    "gridder": _STR, "robust": _NUM, "uvtaper": (list, str), "uvrange": (str, list),
    "threshold": (str, float, int), "nsigma": _NUM, "pblimit": _NUM, "pbmask": _NUM,
    "mask": (list, str), "scales": (list,), "specmode": _STR, "stokes": _STR,
    "reffreq": _STR, "restfreq": _STR, "datacolumn": _STR, "datatype": _STR,
    "field": (str, list), "intent": _STR, "search_radius_arcsec": _NUM, "cfcache": _STR,
    "cycleniter_final_image_nomask": (int,), "clean_no_mask_selfcal_image": (bool,),
    "vlass_plane_reject_ms": (bool, dict), "editmode": _STR, "sensitivity": _NUM,
    "wprojplanes": (int,), "cutout_imsize": (int, list), "psfcutoff": _NUM,
    "smallscalebias": _NUM, "fastnoise": (bool,), "conjbeams": (bool,),
}
MAX_FILE_BYTES = 1 << 20  # a parameter list is a few hundred bytes
MAX_VALUE_CHARS = 20000
MAX_DEPTH = 8  # brackets nested deeper than this are no parameter value


def _depth(text: str) -> int:
    """How deeply brackets nest in ``text`` (quotes ignored: an over-estimate is safe)."""
    d = best = 0
    for ch in text:
        if ch in "([{":
            d += 1
            best = max(best, d)
        elif ch in ")]}":
            d -= 1
    return best


def _literal(path: Path, n: int, key: str, value: str):
    if len(value) > MAX_VALUE_CHARS:
        raise InputError(f"{path}:{n}: value of {key!r} is {len(value)} characters long "
                         f"(at most {MAX_VALUE_CHARS})")
    if _depth(value) > MAX_DEPTH:
        raise InputError(f"{path}:{n}: value of {key!r} nests brackets more than {MAX_DEPTH} deep")
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        raise InputError(
            f"{path}:{n}: value of {key!r} is not a Python literal: {value[:200]!r}"
            " (strings need quotes, lists are Python lists)") from None
    except (RecursionError, MemoryError):
        raise InputError(f"{path}:{n}: value of {key!r} is too deeply nested or too large to read") from None


def parse(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"parameter list not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size} bytes: a parameter list has at most {MAX_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if key not in KEYS:
            raise InputError(f"{path}:{n}: unknown parameter {key[:100]!r}")
        val = _literal(path, n, key, value)
        if key in seen:
            raise InputError(f"{path}:{n}: {key!r} is set a second time (first on line {seen[key]})")
        seen[key] = n
        if not isinstance(val, KEYS[key]) or (isinstance(val, bool) and bool not in KEYS[key]):
            want = " or ".join(t.__name__ for t in KEYS[key])
            raise InputError(f"{path}:{n}: {key!r} must be {want}, got {type(val).__name__} {val!r}")
        out[key] = val
    return out


DEFAULT_SPW_GROUPS = [str(s) for s in range(2, 18)]  # VLASS-SE-CUBE default: 16 one-spw groups (spec §3.2)


def validate_spw_groups(spw: Any, source: str = "spw") -> list[str]:
    """The CCIP ``spw`` value: a list of distinct groups, each comma-separated integer spw ids."""
    return listvalues.spw_groups(spw, source)


def _check_image_keys(p: dict[str, Any], path: Path) -> None:
    """The keys both lists share: imagename and phasecenter (required), imsize and cell."""
    for key in ("imagename", "phasecenter"):
        if key not in p:
            raise InputError(f"{path}: required parameter {key!r} is missing")
    listvalues.imagename(p["imagename"], f"{path}: imagename")
    listvalues.phasecenter(p["phasecenter"], f"{path}: phasecenter")
    if "imsize" in p:
        listvalues.imsize(p["imsize"], f"{path}: imsize")
    if "cell" in p:
        listvalues.cell(p["cell"], f"{path}: cell")


def check_seip(path: str | Path) -> dict[str, Any]:
    """``SEIP_parameter.list`` parsed and every value stage 2 and restorepims use checked."""
    path = Path(path)
    p = parse(path)
    _check_image_keys(p, path)
    if "spw" in p:
        listvalues.spw_selection(p["spw"], f"{path}: spw")
    from .heuristics import se  # the SEIP modes and their heuristics (pure)

    try:  # a mode is refused by the gridder its heuristics (or the list) give, not by its name
        se.seip_mode(p.get("imaging_mode", "VLASS-SE-CONT"), p.get("gridder"), p.get("wprojplanes"))
    except se.UnrestorableMode as e:
        raise InputError(f"{path}: {e}") from None
    return p


def check_ccip(path: str | Path, spw_override=None) -> dict[str, Any]:
    """``CCIP_parameter.list`` parsed and every value stage 6 and the imaging use checked (the run's
    ``spw_groups``, when given, replace the list's ``spw``)."""
    path = Path(path)
    p = parse(path)
    mode = p.get("imaging_mode", "VLASS-SE-CUBE")
    if mode != "VLASS-SE-CUBE":
        raise InputError(f"{path}: imaging_mode must be 'VLASS-SE-CUBE', got {mode!r}")
    _check_image_keys(p, path)
    if spw_override:
        validate_spw_groups(list(spw_override), "run parameter spw_groups")
    elif "spw" in p:
        validate_spw_groups(p["spw"], f"{path}: spw")
    from .runparams import SCHEMAS  # the same bounds as the run's imaging_overrides

    for key, rule in SCHEMAS["imaging_overrides"]["properties"].items():
        if key in p and "minimum" in rule and key != "imsize":
            listvalues.bounded(p[key], rule["minimum"], rule["maximum"], f"{path}: {key}")
    vr = p.get("vlass_plane_reject_ms")
    if isinstance(vr, dict):
        listvalues.plane_reject(vr, f"{path}: vlass_plane_reject_ms")
    return p


