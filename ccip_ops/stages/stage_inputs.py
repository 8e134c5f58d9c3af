"""Stage inputs (before NRAO stage 1, hifv_importdata): check a field's archive folder and
copy what the run needs into its working tree.

Reads ``CCIP_ARCHIVE_ROOT/<field_id>/`` (DESIGN.md §3.1): exactly one PIMS ``<name>.ms``,
``reimaging_resources.tgz``, ``SEIP_parameter.list``, ``CCIP_parameter.list`` and optionally
``<name>_split.flagtargetstemplate.txt``. Writes copies into ``working/``. The archive is
never written. Fails with :class:`InputError` naming every missing input, so that an
operator fixes the folder once; no retry can help with that. Entry points: :func:`check_archive`
(reads only), then :func:`copy_inputs`.

Everything that can be known before the copy is checked before it: both parameter lists in full
(``paramlist.check_seip``/``check_ccip``: a bad ``imagename``, ``phasecenter``, ``imsize``,
``cell`` or ``spw`` would otherwise surface in stage 6, hours later), the tarball's members
(``restore_resources.check_tarball``; which resources it holds is restorepims' check, spec §2.3), and the archive folder's entries: inside the MS
no symbolic link and no device, fifo or socket (a link to a device would never finish copying, a
link out of the archive would copy foreign content); an input that is itself a link must resolve
inside the archive root. The folder's :func:`fingerprint` (names, sizes, times of its files) is
recorded first, so that the sweep can tell whether a failed field's inputs have changed since.

Then, still before anything is copied, the spws of the PIMS (those with rows) are checked against the
lists (:func:`check_spws`): a spw that ``SEIP_parameter.list``'s ``spw`` or an imaged spw group
(``CCIP_parameter.list``'s ``spw``, or the run's ``spw_groups``) names but the PIMS lacks stops
the run, naming the spws, the groups and both files; dropping it silently would restore a
state SE never had, or deliver fewer planes than the list asks for while looking complete.
Spws that no list names (the pointing spws 0-1, extra windows) are ignored, and that is said.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

from .. import listvalues, msinfo, naming, paramlist
from ..exceptions import InputError
from ..runtree import RunTree, field_folder, remove, write_json
from . import restore_resources

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
    name = naming.ms_root(pims.name)
    template = field_dir / naming.flag_template(naming.split_vis(name))
    return {"pims": pims, "name": name, "template": template if template.is_file() else None,
            **{k: field_dir / k for k in REQUIRED_FILES}}


def fingerprint(field_dir: Path) -> str:
    """A digest of the folder's entries (relative path, type, size, modification time), links not
    followed: it changes when an operator replaces or edits any input."""
    h = hashlib.sha256()
    if not field_dir.is_dir():
        return "missing"
    for top, dirs, files in os.walk(field_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(top, d))]):
            p = os.path.join(top, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, field_dir)}\0{stat.S_IFMT(st.st_mode)}\0{st.st_size}\0"
                     f"{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _resolved_input(p: Path, archive_root: Path) -> Path:
    """An input path, or where its link points when that lies inside the archive root."""
    if not p.is_symlink():
        return p
    target = p.resolve()
    if not target.is_relative_to(Path(archive_root).resolve()):
        raise InputError(f"{p} is a symbolic link out of the archive (to {target}): links out of the archive "
                         "are refused; copy the file into the field's folder")
    return target


def check_entries(ms: Path) -> None:
    """InputError naming every entry of the MS that is not a plain file or folder."""
    bad = []
    for top, dirs, files in os.walk(ms, followlinks=False):
        for name in dirs + files:
            p = os.path.join(top, name)
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                bad.append(f"{p} (symbolic link to {os.readlink(p)})")
            elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                bad.append(f"{p} (device, fifo or socket)")
        if len(bad) > 20:
            break
    if bad:
        raise InputError(f"the PIMS {ms} holds entries that are not plain files or folders, which are never "
                         "copied: " + "; ".join(bad[:20]))


def _copy(src: Path, dst: Path) -> None:
    """Copy to a temporary name, then rename: a retry never sees a half copy as complete."""
    tmp = dst.with_name(dst.name + ".partial")
    remove(tmp)
    remove(dst)
    if src.is_dir():
        shutil.copytree(src, tmp, symlinks=True)  # checked to hold none; never followed
    else:
        shutil.copy2(src, tmp, follow_symlinks=False)
    tmp.rename(dst)


def check_inputs(archive_root: Path, field_id: str) -> dict:
    """Every check of the field's archive folder that needs no copy: the inputs present, their
    entries plain, both parameter lists and the tarball valid. Returns :func:`find_inputs`' paths,
    links inside the archive resolved."""
    found = find_inputs(field_folder(archive_root, field_id))
    for k in ("pims", *REQUIRED_FILES, "template"):
        if found[k] is not None:
            found[k] = _resolved_input(found[k], archive_root)
    check_entries(found["pims"])
    for k in REQUIRED_FILES + ("template",):
        if found[k] is not None and not stat.S_ISREG(os.stat(found[k]).st_mode):
            raise InputError(f"{found[k]} is not a regular file")
    paramlist.check_seip(found["SEIP_parameter.list"])
    paramlist.check_ccip(found["CCIP_parameter.list"])
    restore_resources.check_tarball(found["reimaging_resources.tgz"])
    return found


def check_spws(pims: Path, seip_list: Path, ccip_list: Path, spw_groups: tuple[str, ...] | None = None) -> list[str]:
    """Refuse spws the lists name that the PIMS has no rows for; return notes on the ones no list names."""
    try:
        have = set(msinfo.spws_with_data(pims))
    except RuntimeError as e:  # casatools: not a MeasurementSet
        raise InputError(f"PIMS {pims} is not a readable MeasurementSet: {e}") from None
    seip_spw = paramlist.parse(seip_list).get("spw", "2~17")
    seip = listvalues.spw_ids(seip_spw, f"{seip_list}: spw")
    if spw_groups:
        groups, gsource = paramlist.validate_spw_groups(list(spw_groups), "run parameter spw_groups"), \
            "run parameter spw_groups"
    else:
        groups = paramlist.validate_spw_groups(paramlist.parse(ccip_list).get("spw", paramlist.DEFAULT_SPW_GROUPS), f"{ccip_list}: spw")
        gsource = f"{ccip_list} spw"
    problems = []
    if seip - have:
        problems.append(f"{seip_list} spw={seip_spw!r} names spws {sorted(seip - have)} that the PIMS has no data "
                        "for: the SE model was imaged from them, so the restore cannot reproduce SE's state")
    short = {g: sorted({int(x) for x in g.split(",")} - have) for g in groups}
    short = {g: m for g, m in short.items() if m}
    if short:
        problems.append(f"{gsource}: spw groups {list(short)} name spws {sorted(set().union(*short.values()))} "
                        "that the PIMS has no data for; image the other groups with the run parameter "
                        "spw_groups, or fix the list")
    if problems:
        raise InputError(f"PIMS {pims} has data for spws {sorted(have)}:\n  " + "\n  ".join(problems))
    named = seip | {int(x) for g in groups for x in g.split(",")}
    extra = sorted(have - named)
    return [f"PIMS spws {extra} are named by neither {seip_list.name} nor the spw groups: ignored"] if extra else []


def check_archive(archive_root: Path, field_id: str, spw_groups: tuple[str, ...] | None = None,
                  tree: RunTree | None = None) -> list[str]:
    """The field's archive folder (:func:`check_inputs`) and its PIMS's spws against the lists,
    before anything is copied; returns the notes for the weblog (what is ignored). With ``tree``,
    the folder's fingerprint is recorded first (the sweep compares it after a failure)."""
    if tree is not None:
        _record(archive_root, field_id, tree)
    found = check_inputs(archive_root, field_id)
    return check_spws(found["pims"], found["SEIP_parameter.list"], found["CCIP_parameter.list"], spw_groups)


def _record(archive_root: Path, field_id: str, tree: RunTree, notes=()) -> None:
    tree.make()
    write_json(tree.stage_data("stage_inputs"),
               {"fingerprint": fingerprint(field_folder(archive_root, field_id)), "started": time.time(),
                "archive_notes": [f"spws: {n}" for n in notes]})


def copy_inputs(archive_root: Path, field_id: str, tree: RunTree, notes: list[str] | tuple = ()) -> dict:
    """Check the field's archive folder and copy its inputs into ``working/``; ``notes`` (of
    :func:`check_archive`) go into the stage's data for the weblog."""
    _record(archive_root, field_id, tree, notes)
    found = check_inputs(archive_root, field_id)
    w = tree.working
    _copy(found["pims"], w / found["pims"].name)
    for k in REQUIRED_FILES:
        _copy(found[k], w / k)
    if found["template"] is not None:
        _copy(found["template"], w / found["template"].name)
    return {"field_id": field_id, "name": found["name"], "pims": tree.rel(w / found["pims"].name),
            "template": found["template"].name if found["template"] else None}
