"""SEIP/CCIP parameter lists (spec/ccip_reference.md §3.1) and spw-group validation.

Grammar: ``key = value`` lines; ``#`` lines and lines without ``=`` are ignored; a line is
split at its first ``=``; the value is a Python literal read with ``ast.literal_eval``
(never evaluated as code). Unknown keys, values of the wrong type and unparsable values
are refused with the file name, the line number and the key.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from .exceptions import InputError
from .naming import SPW_GROUP_PATTERN

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
GROUP_RE = re.compile(SPW_GROUP_PATTERN)


def parse(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"parameter list not found: {path}")
    out: dict[str, Any] = {}
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if key not in KEYS:
            raise InputError(f"{path}:{n}: unknown parameter {key!r}")
        try:
            val = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise InputError(
                f"{path}:{n}: value of {key!r} is not a Python literal: {value!r}"
                " (strings need quotes, lists are Python lists)") from None
        if not isinstance(val, KEYS[key]) or (isinstance(val, bool) and bool not in KEYS[key]):
            want = " or ".join(t.__name__ for t in KEYS[key])
            raise InputError(f"{path}:{n}: {key!r} must be {want}, got {type(val).__name__} {val!r}")
        out[key] = val
    return out


DEFAULT_SPW_GROUPS = [str(s) for s in range(2, 18)]  # VLASS-SE-CUBE default: 16 one-spw groups (spec §3.2)


def validate_spw_groups(spw: Any, source: str = "spw") -> list[str]:
    """The CCIP ``spw`` value: a list of groups, each comma-separated integer spw ids."""
    if not isinstance(spw, list):
        raise InputError(
            f"{source}: spw must be a list of spw groups such as ['2', '3,4'], got {type(spw).__name__} {spw!r}")
    if not spw:
        raise InputError(f"{source}: spw is an empty list: no spw group to image")
    for g in spw:
        if not isinstance(g, str) or not GROUP_RE.fullmatch(g):
            raise InputError(
                f"{source}: spw group {g!r} is not comma-separated integer spw ids "
                "(channel '2:0~15' and range '1~4' selections are not allowed)")
    return list(spw)


def spw_selection(expr: str, source: str) -> set[int] | None:
    """The spw ids of a CASA spw selection such as '2~17' or '2,3,4:0~15'; None for all ('' or '*')."""
    expr = str(expr).strip()
    if expr in ("", "*"):
        return None
    out: set[int] = set()
    for tok in expr.split(","):
        tok = tok.split(":")[0].strip()
        a, _, b = tok.partition("~")
        if not a.strip().isdigit() or (b and not b.strip().isdigit()):
            raise InputError(f"{source}: spw selection {expr!r} is not a list of spw ids or ranges")
        out.update(range(int(a), int(b or a) + 1))
    return out
