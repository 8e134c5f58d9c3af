"""The CF caches of the awproject restore (spec §1 stage 2, §2.4 step 3).

NRAO's SEIP list gives ``cfcache='<wbawp cache>,<wbawp=False cache>'`` (``get_cfcaches``: one
path is the wide-band one only). A cache given and readable (a non-empty directory; relative
paths are read from ``working/``, where the list is) is copied into ``working/`` first: tclean
adds the convolution functions it lacks to a cache, and nothing may be written outside the run
tree. A cache not given, or not readable on this machine (production lists name
``/home/vlass/packages/...``), is computed by tclean into ``working/`` under the restore's own
name (:func:`..naming.cfcache`); a stale one from an earlier try is removed first. Where each
came from is returned, for the stage data and the weblog. Entry point: :func:`cf_caches`.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import naming
from ..runtree import RunTree, remove

log = logging.getLogger("ccip")


@dataclass(frozen=True)
class CfCaches:
    wb: str  # the wide-band A-projection cache (absolute path in working/)
    nowb: str  # the wbawp=False cache
    wb_from: str  # "computed", or the path it was copied from
    nowb_from: str

    def to_json(self) -> dict:
        return asdict(self)


def readable(path: Path) -> bool:
    """A CF cache tclean can read: a non-empty, readable directory."""
    try:
        return path.is_dir() and os.access(path, os.R_OK | os.X_OK) and any(path.iterdir())
    except OSError:
        return False


def given_caches(cfcache: str) -> tuple[str | None, str | None]:
    """NRAO's ``get_cfcaches``: 'a,b' -> (a, b); 'a' -> (a, None); '' -> (None, None)."""
    parts = [c.strip() for c in (cfcache or "").split(",")][:2]
    parts = [c or None for c in parts] + [None, None]
    return parts[0], parts[1]


def cf_caches(tree: RunTree, cfcache: str, seip_img: str) -> CfCaches:
    w = tree.working
    out = {}
    for key, given, wbawp in (("wb", given_caches(cfcache)[0], True), ("nowb", given_caches(cfcache)[1], False)):
        dst = w / naming.cfcache(naming.RESTORE_STAGE, seip_img, wbawp)
        remove(dst)
        src = Path(given) if given else None
        if src is not None and not src.is_absolute():
            src = w / src
        if src is not None and readable(src):
            shutil.copytree(src, dst, symlinks=False)
            out[key], out[key + "_from"] = str(dst), str(src)
            log.info("CF cache (wbawp=%s) copied from %s", wbawp, src)
        else:
            if given:
                log.warning("CF cache (wbawp=%s) %s from SEIP_parameter.list is not readable here: "
                            "computing it into %s", wbawp, given, dst.name)
            out[key], out[key + "_from"] = str(dst), "computed" + (f" ({given} not readable)" if given else "")
    return CfCaches(**out)
