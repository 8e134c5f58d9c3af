"""hifv_restorepims (stage 4, spec §2): bring the PIMS to the state of the SE-CONT final imaging.

Reads ``working/reimaging_resources.tgz`` and the transformed MS ``<name>_split.ms``.
In the NRAO order:

1. check the tarball and the six resources (§2.2), extracting only the matching members,
   safely (absolute paths, ``..``, links pointing outside and device files are refused by
   name), into a staging folder first, so a failed check changes nothing; an existing
   ``statwt_1`` flag version is never overwritten (the flag directory is then not extracted);
   if anything is missing, fail with the §2.3 message listing every resource;
2. back up the initial flags as ``hifv_restorepims_initial`` (once);
3. fill MODEL_DATA from the SE model images with the SE stage-1 heuristics (iter0 with
   ``calcres=False``, model copied in under the iter0 name, then a predict-only tclean); on a
   re-run, first restore ``hifv_restorepims_initial``, re-initialise the weights and drop
   CORRECTED_DATA (otherwise statwt would write SIGMA instead of WEIGHT);
4. restore the SE flags ``statwt_1``; 5. re-run statwt with the SE settings;
6. apply the selfcal table with the SE settings (fills CORRECTED_DATA).

Returns the mask list ``[tier1, tier2]`` (paths relative to the run tree).
"""
from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import tarfile
from pathlib import Path

from .. import casa_env
from ..heuristics import se
from ..model import CcipInputError
from ..runtree import RunTree, remove
from ._casa import Casa

log = logging.getLogger("ccip")
RESTORE_STAGE = 4
RULE = "-" * 120


def resource_patterns(vis_name: str, img: str) -> dict[str, str]:
    return {
        "flag_dir": vis_name + ".flagversions*",
        "flag_version": vis_name + ".flagversions/flags.statwt_1",
        "selfcal_table": vis_name + ".*.phase-self-cal.tbl*",
        "model_images": "s*_0." + img + ".I.iter1.model*",
        "tier1_mask": "s*_0." + img + ".QLcatmask-tier1.mask*",
        "tier2_mask": "s*_0." + img + ".combined-tier2.mask*",
    }


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
    """Step 1. Returns {key: [sorted paths relative to working/]} or raises CcipInputError."""
    w = tree.working
    tgz = w / "reimaging_resources.tgz"
    pats = resource_patterns(vis_name, img)
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
                raise CcipInputError(f"{tgz}: refusing to extract unsafe members: "
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
    except CcipInputError:
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
    (tree.working / "restorepims_resources.json").write_text(json.dumps(
        {k: {"value": v[0], "found": v[1]} for k, v in found.items()}, indent=1))
    if not all(v[1] for v in found.values()):
        remove(staging)
        raise CcipInputError(_table(found))
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


def _flagversion_exists(vis: Path, name: str) -> bool:
    return (Path(str(vis) + ".flagversions") / f"flags.{name}").exists()


def run(tree: RunTree, vis_rel: str, seip_target: dict) -> dict:
    casa = Casa(tree.working, "restorepims")
    w = tree.working
    vis = tree.abs(vis_rel)
    img = seip_target["imagename"]
    res = check_and_extract(tree, vis.name, img)
    # 2. initial flag backup
    if not _flagversion_exists(vis, "hifv_restorepims_initial"):
        casa("flagmanager", vis=str(vis), mode="save", versionname="hifv_restorepims_initial", merge="replace",
             comment="flagversion before running hifv_restorepims()")
    else:
        log.warning("flag version hifv_restorepims_initial already exists: not saved again")
    # 3. model column from the SE selfcal model
    ct = casa_env.tools()
    tb = ct.table()
    if (vis / "SOURCE").exists():
        tb.open(str(vis / "SOURCE"))
        has_vmodel = "SOURCE_MODEL" in tb.colnames()
        tb.close()
        if has_vmodel:
            casa("delmod", vis=str(vis), otf=True, scr=False)
    tb.open(str(vis))
    rerun = "MODEL_DATA" in tb.colnames()
    tb.close()
    if rerun:
        log.warning("MODEL_DATA already exists in %s: restoring flags hifv_restorepims_initial and "
                    "re-initialising weights so the prediction matches SE", vis.name)
        if _flagversion_exists(vis, "hifv_restorepims_initial"):
            casa("flagmanager", vis=str(vis), mode="restore", versionname="hifv_restorepims_initial")
        casa("initweights", vis=str(vis), wtmode="nyq")
        # Departure from NRAO: with a CORRECTED_DATA column present, statwt(datacolumn='residual_data')
        # updates SIGMA but not WEIGHT, so the re-run would keep Nyquist weights. SE ran statwt before
        # selfcal, without that column; drop it (applycal below writes it again).
        tb.open(str(vis), nomodify=False)
        if "CORRECTED_DATA" in tb.colnames():
            tb.removecols(["CORRECTED_DATA"])
        tb.close()
    model = res["model_images"][0]
    restore_imagename = model[: model.rindex(".model")]
    root = f"s{RESTORE_STAGE}_0.{img}.I.iter0"
    for p in w.glob(f"s{RESTORE_STAGE}_0.{img}.I.iter*"):
        remove(p)
    targs = {**se.stage1_tclean(str(vis), str(w / root), seip_target["imsize"], seip_target["cell"],
                                seip_target["phasecenter"]), "niter": 0}
    casa("tclean", **targs, calcres=False)
    for p in sorted(w.glob(restore_imagename + ".*")):
        dst = w / (root + p.name[len(restore_imagename):])
        remove(dst)
        shutil.copytree(p, dst)
    casa("tclean", **targs, calcpsf=False, calcres=False, restart=True, savemodel="modelcolumn")
    # 4. the SE flags; 5. statwt with the SE settings; 6. the selfcal table
    casa("flagmanager", vis=str(vis), mode="restore", versionname="statwt_1")
    casa("statwt", vis=str(vis), **se.STATWT, flagbackup=False)
    tb.open(str(vis / "SPECTRAL_WINDOW"))
    nspw = tb.nrows()
    tb.close()
    lowest = min(int(s) for s in _spw_ids(vis))
    casa("applycal", **se.selfcal_applycal(str(vis), str(w / res["selfcal_table"][0]), nspw, lowest))
    masks = [tree.rel(w / res["tier1_mask"][0]), tree.rel(w / res["tier2_mask"][0])]
    out = {"mask_list": masks, "resources": res, "rerun": rerun, "casa_calls": casa.records()}
    (w / "restorepims_result.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def _spw_ids(vis: Path) -> list[int]:
    ct = casa_env.tools()
    tb = ct.table()
    tb.open(str(vis / "DATA_DESCRIPTION"))
    spw = tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(str(vis))
    dd = set(tb.getcol("DATA_DESC_ID").tolist())
    tb.close()
    return sorted({int(spw[d]) for d in dd})
