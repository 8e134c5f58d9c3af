"""Stage inputs (before NRAO stage 1, hifv_importdata): check a field's archive folder and
copy what the run needs into its working tree.

Reads ``CCIP_ARCHIVE_ROOT/<field_id>/`` (DESIGN.md §3.1): exactly one PIMS ``<name>.ms``,
``reimaging_resources.tgz``, ``SEIP_parameter.list``, ``CCIP_parameter.list`` and optionally
``<name>_split.flagtargetstemplate.txt``. Writes copies into ``working/``. The archive is
never written. Fails with :class:`InputError` naming every missing input, so that an
operator fixes the folder once; no retry can help with that. Entry point: :func:`copy_inputs`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import naming
from ..exceptions import InputError
from ..runtree import RunTree, field_folder, remove

REQUIRED_FILES = ("reimaging_resources.tgz", "SEIP_parameter.list", "CCIP_parameter.list")


def find_inputs(field_dir: Path) -> dict:
    """Locate the inputs of one archive folder; raise naming everything that is missing."""
    if not field_dir.is_dir():
        raise InputError(f"archive folder for this field does not exist: {field_dir}")
    problems = []
    ms = sorted(p for p in field_dir.glob("*.ms") if p.is_dir())
    if not ms:
        problems.append(f"no PIMS (a MeasurementSet directory <name>.ms) in {field_dir}")
    elif len(ms) > 1:
        problems.append(f"more than one MeasurementSet in {field_dir}: {', '.join(p.name for p in ms)}")
    elif not (ms[0] / "table.dat").is_file():
        problems.append(f"PIMS {ms[0]} is not a readable MeasurementSet (no table.dat)")
    for name in REQUIRED_FILES:
        if not (field_dir / name).is_file():
            problems.append(f"missing {name} in {field_dir}")
    if problems:
        raise InputError("input check failed:\n  " + "\n  ".join(problems))
    pims = ms[0]
    name = pims.name[: -len(".ms")]
    template = field_dir / naming.flag_template(naming.split_vis(name))
    return {"pims": pims, "name": name, "template": template if template.is_file() else None,
            **{k: field_dir / k for k in REQUIRED_FILES}}


def _copy(src: Path, dst: Path) -> None:
    """Copy to a temporary name, then rename: a retry never sees a half copy as complete."""
    tmp = dst.with_name(dst.name + ".partial")
    remove(tmp)
    remove(dst)
    if src.is_dir():
        shutil.copytree(src, tmp, symlinks=False)
    else:
        shutil.copy2(src, tmp)
    tmp.rename(dst)


def copy_inputs(archive_root: Path, field_id: str, tree: RunTree) -> dict:
    """Check the field's archive folder and copy its inputs into ``working/``."""
    found = find_inputs(field_folder(archive_root, field_id))
    tree.make()
    w = tree.working
    _copy(found["pims"], w / found["pims"].name)
    for k in REQUIRED_FILES:
        _copy(found[k], w / k)
    if found["template"] is not None:
        _copy(found["template"], w / found["template"].name)
    return {"field_id": field_id, "name": found["name"], "pims": tree.rel(w / found["pims"].name),
            "template": found["template"].name if found["template"] else None}
