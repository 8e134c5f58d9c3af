"""Step 1 of hifv_restorepims (stage 4, spec §2.2-§2.3): check and extract ``reimaging_resources.tgz``.

The tarball and its six resources are checked, and only the matching members extracted,
safely (absolute paths, ``..``, links pointing outside, hard links to members that are not in the
tarball, duplicate member names, device files and more than ``CCIP_TARBALL_MAX_GIB`` of content
are refused by name; ``./`` prefixes, as ``tar -C dir .`` writes them, are dropped first),
into a staging folder first, so a failed check changes nothing; an existing ``statwt_1`` flag
version is never overwritten (the flag directory is then not extracted). If anything is
missing the stage fails with the §2.3 message listing every resource, and the resource table
is in the stage's data for the weblog either way. Entry point: :func:`check_and_extract`; the first
task runs :func:`check_tarball` on the archive's tarball (the listing only) before any copy.

Then, before the first tclean, :func:`check_grids`: the extracted SE model images and masks
against the grid the restore computes (:mod:`ccip_ops.heuristics.coordsys`): refused with both
coordinate systems and the file named, or restored at the model's own size (said in the weblog).
"""
from __future__ import annotations

import fnmatch
import logging
import shutil
import tarfile
from pathlib import Path

from dataclasses import replace

from .. import listvalues, naming, settings
from ..exceptions import InputError, ResourceLimitError
from ..heuristics import coordsys, se
from ..model import SeipTarget
from ..runtree import RunTree, read_json, remove, write_json

log = logging.getLogger("ccip")
RULE = "-" * 120
MAX_MEMBERS = 100000


def _normalise(name: str) -> str:
    """``./a/b`` and ``a/b/`` -> ``a/b``; ``.`` and ``./`` -> ``""``."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "" if name == "." else name


def _unsafe(m: tarfile.TarInfo) -> str | None:
    name = m.name
    parts = Path(name).parts
    if name.startswith("/") or Path(name).is_absolute():
        return "absolute path"
    if ".." in parts:
        return "path with '..'"
    if m.isdev() or m.ischr() or m.isblk() or m.isfifo():
        return "device or fifo file"
    if m.issym() or m.islnk():
        target = Path(m.linkname)
        if target.is_absolute() or ".." in (Path(name).parent / target).parts:
            return f"link pointing outside ({m.linkname})"
    return None


def read_members(tar: tarfile.TarFile, tgz: Path, max_bytes: int | None = None) -> list[tarfile.TarInfo]:
    """The tarball's members with normalised names (the ``.`` entry dropped), after checking them all;
    InputError naming every unsafe, duplicate or dangling member, or the size over the cap."""
    max_bytes = settings.tarball_max_bytes() if max_bytes is None else max_bytes
    members, seen, bad, total = [], {}, [], 0
    for m in tar:
        if len(members) >= MAX_MEMBERS:
            raise InputError(f"{tgz}: more than {MAX_MEMBERS} members: not a reimaging_resources tarball")
        raw = m.name
        m.name = _normalise(m.name)
        if m.islnk():
            m.linkname = _normalise(m.linkname)
        if not m.name:
            if not m.isdir():
                bad.append((raw, "member without a name"))
            continue
        if (why := _unsafe(m)):
            bad.append((raw, why))
        elif m.name in seen and not (m.isdir() and seen[m.name].isdir()):
            bad.append((raw, "member name given twice"))
        elif m.islnk() and not (m.linkname in seen and seen[m.linkname].isreg()):
            bad.append((raw, f"hard link to {m.linkname!r}, which is not an earlier file of the tarball"))
        seen[m.name] = m
        members.append(m)
        if m.isreg():
            total += m.size
    if bad:
        raise InputError(f"{tgz}: refusing to extract unsafe members: "
                         + "; ".join(f"{n!r} ({why})" for n, why in bad[:20])
                         + (f"; and {len(bad) - 20} more" if len(bad) > 20 else ""))
    if total > max_bytes:
        raise InputError(f"{tgz}: its members hold {total / 2**30:.2f} GiB, over the cap of "
                         f"{max_bytes / 2**30:.2f} GiB (CCIP_TARBALL_MAX_GIB)")
    return members


def check_tarball(tgz: Path) -> list[tarfile.TarInfo]:
    """The first task's check of the archive's tarball (the listing only, no extraction): readable,
    every member safe, within the size cap. Whether the six resources are present is checked and
    reported by restorepims (spec §2.3: its stage page shows the resource table)."""
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            return read_members(tar, tgz)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(f"{tgz}: not a readable gzip tar file: {e}") from None


def _table(found: dict[str, tuple]) -> str:
    lines = [RULE, "Some resources required for hifv_restorepims()/hif_makeimages() are not available, "
             "and Pipeline cannot continue."]
    lines += [f"{k.ljust(20)}: {v!r}" for k, v in found.items()]
    lines.append(RULE)
    return "\n".join(lines)


def check_and_extract(tree: RunTree, vis_name: str, img: str) -> dict[str, list[str]]:
    """Step 1. Returns {key: [sorted paths relative to working/]} or raises InputError."""
    w = tree.working
    tgz = w / "reimaging_resources.tgz"
    pats = naming.resource_patterns(vis_name, img)
    staging = w / ".restorepims_extract"
    remove(staging)
    found: dict[str, tuple] = {}
    ok_tar = False
    members: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = read_members(tar, tgz)
            keep_flags = (w / pats["flag_version"]).exists()
            if keep_flags:
                log.warning("%s already exists: flag versions in the tarball are not extracted",
                            pats["flag_version"])
            wanted = []
            for m in members:
                if not any(fnmatch.fnmatch(m.name, p) for p in pats.values()):
                    continue
                if keep_flags and fnmatch.fnmatch(m.name, pats["flag_dir"]):
                    continue
                wanted.append(m)
            need = sum(m.size for m in wanted if m.isreg())
            free = shutil.disk_usage(w).free
            if need > free:
                raise ResourceLimitError(f"{tgz}: extracting {need / 2**30:.2f} GiB needs more than the "
                                         f"{free / 2**30:.2f} GiB free in {w}")
            staging.mkdir()
            tar.extractall(staging, members=wanted, filter="data")
            ok_tar = True
    except (InputError, ResourceLimitError):
        remove(staging)
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        log.error("reimaging_resources %s is not a readable gzip tar file: %s", tgz, e)
        remove(staging)
    found["reimaging_resources"] = (str(tgz), ok_tar)
    result: dict[str, list[str]] = {}
    for key, pat in pats.items():
        hits = sorted({str(p.relative_to(staging)) for p in staging.glob(pat)} if ok_tar else set())
        hits = sorted(set(hits) | {str(p.relative_to(w)) for p in w.glob(pat)
                                    if key in ("flag_dir", "flag_version") and not p.name.endswith(".partial")})
        if hits and key == "flag_dir":
            hits = sorted({h.split("/")[0] for h in hits})
        if hits:
            found[key] = (hits, True)
            result[key] = hits
        else:
            found[key] = (pat, False)
            log.error("Cannot find the request %s using the name pattern: %s", key, pat)
    write_json(tree.stage_data("restorepims"), {"resources": {k: {"value": v[0], "found": v[1]}
                                                              for k, v in found.items()}})
    if not all(v[1] for v in found.values()):
        remove(staging)
        raise InputError(_table(found))
    # all present: move the staged members into working/ (never over an existing flag version)
    for top in sorted({Path(m.name).parts[0] for m in members if m.name}):
        src = staging / top
        if not src.exists():
            continue
        dst = w / top
        if top.endswith(".flagversions") and dst.exists():
            for item in src.iterdir():
                if not (dst / item.name).exists():
                    shutil.move(str(item), str(dst / item.name))
            continue
        remove(dst)
        shutil.move(str(src), str(dst))
    remove(staging)
    return result


def check_grids(tree: RunTree, vis: Path, seip: SeipTarget, res: dict[str, list[str]]) -> SeipTarget:
    """The SE target to restore with, after checking the extracted model images and masks."""
    from ..msinfo import spws_with_data

    w = tree.working
    have = spws_with_data(vis)
    sel = listvalues.spw_ids(seip.spw, "SEIP_parameter.list spw")
    spws = [s for s in have if s in sel]
    expected = coordsys.restore_grid(vis, seip.imsize, seip.cell, seip.phasecenter, spws, se.STAGE1["reffreq"])
    if seip.heuristics.get("gridder") == "awproject":
        # an aw-projection (wbawp) mfs image's spectral increment is not the selected band's span
        # (measured: 2023.6 MHz for one 128 MHz spw of the awp field) and does not enter the
        # prediction, which uses the reference frequency (and the Taylor terms): only that is checked
        expected = replace(expected, freq_incr_hz=None)
    model = res["model_images"][0]
    root = model[: model.rindex(".model")]
    models = sorted(w / m for m in res["model_images"] if m.startswith(root + ".model"))
    masks = [w / res["tier1_mask"][0], w / res["tier2_mask"][0]]
    imsize, notes = coordsys.check(models, masks, expected)
    data = read_json(tree.stage_data("restorepims"), {})
    write_json(tree.stage_data("restorepims"), {**data, "restore_grid": {"imsize": imsize},
                                                "archive_notes": [f"SE images: {n}" for n in notes]})
    for n in notes:
        log.warning("%s", n)
    return replace(seip, imsize=type(seip.imsize)(imsize)) if list(imsize) != list(seip.imsize) else seip
