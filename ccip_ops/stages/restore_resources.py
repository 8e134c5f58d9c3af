"""Step 1 of hifv_restorepims (stage 4, spec §2.2-§2.3): check and extract ``reimaging_resources.tgz``.

The tarball and its six resources are checked, and only the matching members extracted,
safely (absolute paths, ``..``, links pointing outside and device files are refused by name),
into a staging folder first, so a failed check changes nothing; an existing ``statwt_1`` flag
version is never overwritten (the flag directory is then not extracted). If anything is
missing the stage fails with the §2.3 message listing every resource, and the resource table
is in the stage's data for the weblog either way. Entry point: :func:`check_and_extract`.

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

from .. import naming, paramlist
from ..exceptions import InputError
from ..heuristics import coordsys, se
from ..model import SeipTarget
from ..runtree import RunTree, read_json, remove, write_json

log = logging.getLogger("ccip")
RULE = "-" * 120


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
            members = tar.getmembers()
            bad = [(m.name, why) for m in members if (why := _unsafe(m))]
            if bad:
                raise InputError(f"{tgz}: refusing to extract unsafe members: "
                                     + "; ".join(f"{n!r} ({why})" for n, why in bad))
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
            staging.mkdir()
            tar.extractall(staging, members=wanted, filter="data")
            ok_tar = True
    except InputError:
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
    for top in sorted({Path(m.name).parts[0] for m in members}):
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
    sel = paramlist.spw_selection(seip.spw, "SEIP_parameter.list spw")
    spws = [s for s in have if sel is None or s in sel]
    expected = coordsys.restore_grid(vis, seip.imsize, seip.cell, seip.phasecenter, spws, se.STAGE1["reffreq"])
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
