"""hif_makeimages in vlass-cube mode (stage 7, spec §4): one spw group, full-Stokes IQUV.

Reads the restored MS and the Tier-1/Tier-2 masks; writes in ``working/``, with
R = ``s7_0.<IMG>.spw<g>`` and T = ``R.IQUV``:

- iter0 (``niter=0``) -> iter1 (Tier-1 mask copy ``T.iter1.cleanmask``) -> iter2 (Tier-2
  combined mask copy) -> iter3 (``usemask='pb'``, ``pbmask=0.4``), mosaic gridder, mtmfs
  nterms=1, Stokes IQUV in one call, the §4.2 parameters (overridable from the CCIP list);
- between iterations the products move as in §4.3 (cleanmask kept, mask deleted,
  image/residual copied, the rest moved); a mask whose x/y shape differs from the image is
  regridded onto it (``imregrid``, nearest);
- kept: iter0-2 ``.image.tt0``/``.residual.tt0`` (+ ``.cleanmask`` for 1-2), iter3 the full set;
- every restored/residual plane has a beam (CAS-13401 check, copied from the psf if absent);
- the VLASS miscinfo keywords on every ``T.iter3.*``.

Stale ``R*`` files are deleted first, so a retry starts clean; the result JSON is written
last, under a temporary name then renamed: it is complete or absent. An error is recorded
in ``working/results/<label>.failed.json`` for the weblog and re-raised.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from pathlib import Path

from .. import casa_env
from ..heuristics import imaging as H
from ..model import ImagingResult, ImagingTarget
from ..runtree import RunTree, remove
from ._casa import Casa

log = logging.getLogger("ccip")


def _move_products(w: Path, T: str, n: int) -> None:
    old, new = f"{T}.iter{n - 1}", f"{T}.iter{n}"
    for p in sorted(w.glob(old + ".*")):
        suffix = p.name[len(old):]
        dst = w / (new + suffix)
        if p.name.endswith(".cleanmask"):
            continue
        if p.name.endswith(".mask"):
            remove(p)
        elif ".residual" in suffix or ".image" in suffix:
            remove(dst)
            shutil.copytree(p, dst)
        else:
            remove(dst)
            shutil.move(str(p), str(dst))


def _make_cleanmask(casa: Casa, user_mask: Path, template: Path, out: Path) -> str:
    """Copy the user mask, or regrid it onto the image grid when the x/y shape differs."""
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(user_mask))
    mshape = list(ia.shape())
    ia.close()
    ia.open(str(template))
    tshape = list(ia.shape())
    ia.close()
    remove(out)
    if mshape[:2] != tshape[:2]:
        log.info("mask %s has shape %s, image %s: regridding", user_mask.name, mshape[:2], tshape[:2])
        casa("imregrid", imagename=str(user_mask), template=str(template), output=str(out), axes=[0, 1],
             interpolation="nearest", replicate=False, overwrite=True)
        return "regridded"
    shutil.copytree(user_mask, out)
    return "copied"


def ensure_beams(w: Path, T: str, n: int) -> int:
    """CAS-13401: give every restored/residual plane the psf's beam where it has none."""
    ct = casa_env.tools()
    ia = ct.image()
    base = w / f"{T}.iter{n}"
    psf = next((p for p in (Path(f"{base}.psf.tt0"), Path(f"{base}.psf")) if p.exists()), None)
    if psf is None:
        return 0
    ia.open(str(psf))
    pshape = ia.shape()
    pbeams = ia.restoringbeam()
    ia.close()
    fixed = 0
    for kind in ("image", "residual", "image.pbcor"):
        for sfx in ("", ".tt0", ".tt1", ".tt2"):
            p = Path(f"{base}.{kind}{sfx}")
            if not p.exists():
                continue
            ia.open(str(p))
            same = list(ia.shape()) == list(pshape)
            has = bool(ia.restoringbeam())
            if same and not has and pbeams:
                if "beams" in pbeams:
                    for c in range(pshape[3]):
                        for s in range(pshape[2]):
                            b = pbeams["beams"][f"*{c}"][f"*{s}"]
                            ia.setrestoringbeam(beam=b, channel=c, polarization=s)
                else:
                    ia.setrestoringbeam(beam=pbeams)
                fixed += 1
            ia.close()
    return fixed


def _beam_of(path: Path) -> dict:
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(path))
    b = ia.restoringbeam(channel=0, polarization=0)
    ia.close()
    qa = ct.quanta()
    return {"bmaj": qa.convert(b["major"], "arcsec")["value"], "bmin": qa.convert(b["minor"], "arcsec")["value"],
            "pa": qa.convert(b["positionangle"], "deg")["value"]}


def actual_bandwidth(vis: str, spws: list[int]) -> float:
    """VLASSBW: sum over spws of (channels not fully flagged) x channel width."""
    tk, ct = casa_env.tasks(), casa_env.tools()
    s = tk.flagdata(vis=vis, mode="summary", spw=",".join(map(str, spws)), spwchan=True)
    msmd = ct.msmetadata()
    msmd.open(vis)
    bw = 0.0
    for spw in spws:
        widths = msmd.chanwidths(spw)
        for c, wd in enumerate(widths):
            r = s.get("spw:channel", {}).get(f"{spw}:{c}")
            if r is None or r["flagged"] < r["total"]:
                bw += abs(float(wd))
    msmd.close()
    return bw


def _set_miscinfo(path: Path, kw: dict) -> None:
    ct = casa_env.tools()
    ia = ct.image()
    ia.open(str(path))
    mi = ia.miscinfo()
    mi.update(kw)
    ia.setmiscinfo(mi)
    ia.close()


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def run(tree: RunTree, target: ImagingTarget) -> ImagingResult:
    w = tree.working
    tree.results.mkdir(parents=True, exist_ok=True)
    res_path = tree.results / f"{target.label}.json"
    fail_path = tree.results / f"{target.label}.failed.json"
    for p in (res_path, fail_path):
        remove(p)
    R = target.imagename
    T = R + ".IQUV"
    for p in w.glob(R + ".*"):  # stale files of this group: a retry starts clean
        remove(p)
    casa = Casa(w, target.label)
    t_start = time.time()
    try:
        vis = str(tree.abs(target.vis))
        info = {"masks": []}
        casa("tclean", **H.tclean_args(target, vis, str(w / f"{T}.iter0"), 0, None))
        ensure_beams(w, T, 0)
        for n, m in enumerate(target.masks, start=1):
            for p in w.glob(f"{T}.iter{n}*"):
                remove(p)
            if m == "pb":
                mask_arg = "pb"
            else:
                cm = w / f"{T}.iter{n}.cleanmask"
                how = _make_cleanmask(casa, tree.abs(m), w / f"{T}.iter{n - 1}.pb.tt0", cm)
                info["masks"].append({"iteration": n, "mask": m, "cleanmask": cm.name, "how": how})
                mask_arg = str(cm)
            _move_products(w, T, n)
            casa("tclean", **H.tclean_args(target, vis, str(w / f"{T}.iter{n}"), n, mask_arg))
            ensure_beams(w, T, n)
        last = len(target.masks)
        kw = H.vlass_keywords(target, actual_bandwidth(vis, target.spws))
        for p in w.glob(f"{T}.iter{last}.*"):
            _set_miscinfo(p, {**kw, "VLASSITY": H.image_type(p.name)})
        images = {kind: tree.rel(w / f"{T}.iter{last}.{kind}.tt0")
                  for kind in ("image", "residual", "psf", "pb", "model", "sumwt", "weight")}
        images["mask"] = tree.rel(w / f"{T}.iter{last}.mask")
        missing = [k for k, v in images.items() if not tree.abs(v).exists()]
        if missing:
            raise RuntimeError(f"tclean finished but products are missing: {missing}")
        beam = _beam_of(tree.abs(images["image"]))
        result = ImagingResult(
            target=target, status="ok", images=images, beam=beam,
            qa={"wall_s": round(time.time() - t_start, 2), "masks": info["masks"],
                "VLASSBW": kw["VLASSBW"], "VLASSBWN": kw["VLASSBWN"]},
            tclean_calls=casa.records())
        _write_json_atomic(res_path, result.to_json())
        return result
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        failed = ImagingResult(target=target, status="failed", error=err, tclean_calls=casa.records(),
                               qa={"traceback": traceback.format_exc(limit=5)})
        _write_json_atomic(fail_path, failed.to_json())
        raise
