"""hif_makeimages in vlass-cube mode (stage 7, spec §4): one spw group, full-Stokes IQUV.

Reads the restored MS and the Tier-1/Tier-2 masks; writes in ``working/``, with
R = ``s7_0.<IMG>.spw<g>`` and T = ``R.IQUV``:

- iter0 (``niter=0``) -> iter1 (Tier-1 mask copy ``T.iter1.cleanmask``) -> iter2 (Tier-2
  combined mask copy) -> iter3 (``usemask='pb'``, ``pbmask=0.4``), mosaic gridder, mtmfs
  nterms=1, Stokes IQUV in one call, the §4.2 parameters (overridable from the CCIP list);
- between iterations the products move as in §4.3 (cleanmask kept, mask deleted,
  image/residual copied, the rest moved: copied, and the earlier ones removed once the next
  iteration is complete, so each completed iteration is a checkpoint a retry resumes from); a
  mask whose x/y shape differs from the image is regridded onto it (``imregrid``, nearest);
- kept: iter0-2 ``.image.tt0``/``.residual.tt0`` (+ ``.cleanmask`` for 1-2), iter3 the full set;
- every restored/residual plane has a beam (CAS-13401 check, copied from the psf if absent);
- the VLASS miscinfo keywords on every ``T.iter3.*``.

Each try images in its own folder ``working/tries/<label>/try<n>/`` and moves its images into
``working/`` only while it is the group's latest try (:mod:`ccip_ops.tries`): an earlier try that
still runs never overwrites a later one's. Stale ``R*`` files are deleted first, so a retry starts
clean; the result JSON (with the try's token) is written last, under a temporary name then
renamed: it is complete or absent. An error is recorded in
``working/results/<label>.failed.json`` for the weblog and re-raised.
Entry point: :func:`image_group`.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path

from .. import casa_env, casaimage, provenance, tries
from ..casatables import msmetadata
from ..exceptions import IncompleteProductError
from ..heuristics import imaging as H
from ..model import ImagingResult, ImagingTarget
from ..runtree import RunTree, read_json, remove, write_json
from ._casa import Casa

log = logging.getLogger("ccip")


def _carry_products(w: Path, old: str, new: str) -> None:
    """Iteration n-1's products become iteration n's (spec §4.3), as copies: iteration n-1 stays
    whole until iteration n is complete, so that a retry can resume from it (:mod:`ccip_ops.tries`);
    :func:`_drop_moved` then removes what §4.3 moves or deletes."""
    for p in sorted(w.glob(old + ".*")):
        suffix = p.name[len(old):]
        if p.name.endswith(".cleanmask") or p.name.endswith(".mask"):
            continue  # kept with its iteration / deleted (tclean makes iteration n's own)
        dst = w / (new + suffix)
        remove(dst)
        shutil.copytree(p, dst)


def _drop_moved(w: Path, old: str) -> None:
    """What §4.3 does not keep of an earlier iteration: all but its image, residual and cleanmask."""
    for p in sorted(w.glob(old + ".*")):
        suffix = p.name[len(old):]
        if not (p.name.endswith(".cleanmask") or ".residual" in suffix or ".image" in suffix):
            remove(p)


def _make_cleanmask(casa: Casa, user_mask: Path, template: Path, out: Path) -> str:
    """Copy the user mask, or regrid it onto the image grid when the x/y shape differs."""
    mshape, tshape = casaimage.shape(user_mask), casaimage.shape(template)
    remove(out)
    if mshape[:2] != tshape[:2]:
        log.info("mask %s has shape %s, image %s: regridding", user_mask.name, mshape[:2], tshape[:2])
        casa("imregrid", imagename=str(user_mask), template=str(template), output=str(out), axes=[0, 1],
             interpolation="nearest", replicate=False, overwrite=True)
        return "regridded"
    shutil.copytree(user_mask, out)
    return "copied"


def ensure_beams(w: Path, root: str) -> int:
    """CAS-13401: give every restored/residual plane the psf's beam where it has none."""
    base = w / root
    psf = next((p for p in (Path(f"{base}.psf.tt0"), Path(f"{base}.psf")) if p.exists()), None)
    if psf is None:
        return 0
    with casaimage.opened(psf) as ia:
        pshape, pbeams = ia.shape(), ia.restoringbeam()
    fixed = 0
    for kind in ("image", "residual", "image.pbcor"):
        for sfx in ("", ".tt0", ".tt1", ".tt2"):
            p = Path(f"{base}.{kind}{sfx}")
            if not p.exists():
                continue
            with casaimage.opened(p) as ia:
                if list(ia.shape()) != list(pshape) or ia.restoringbeam() or not pbeams:
                    continue
                if "beams" in pbeams:
                    for c in range(pshape[3]):
                        for s in range(pshape[2]):
                            ia.setrestoringbeam(beam=pbeams["beams"][f"*{c}"][f"*{s}"], channel=c, polarization=s)
                else:
                    ia.setrestoringbeam(beam=pbeams)
                fixed += 1
    return fixed


def actual_bandwidth(casa: Casa, vis: str, spws: list[int]) -> float:
    """VLASSBW: sum over spws of (channels not fully flagged) x channel width."""
    s = casa("flagdata", vis=vis, mode="summary", spw=",".join(map(str, spws)), spwchan=True)
    bw = 0.0
    with msmetadata(vis) as msmd:
        for spw in spws:
            for c, wd in enumerate(msmd.chanwidths(spw)):
                r = s.get("spw:channel", {}).get(f"{spw}:{c}")
                if r is None or r["flagged"] < r["total"]:
                    bw += abs(float(wd))
    return bw


def thermal_noise(casa: Casa, vis: str, target: ImagingTarget) -> float | None:
    """Expected Stokes-I/V thermal noise (Jy/beam) at the phase centre of the group's plane, from
    the unflagged visibilities of each imaged field and spw (flagdata summary) and the radiometer
    equation (:mod:`ccip_ops.heuristics.thermal`)."""
    from ..heuristics import thermal
    from ..heuristics.fields import parse_phasecenter

    s = casa("flagdata", vis=vis, mode="summary", spw=target.group, field=",".join(map(str, target.field_ids)),
             fieldcnt=True)
    ra0, dec0 = parse_phasecenter(target.phasecenter)
    me = casa_env.tools().measures()
    terms = []
    with msmetadata(vis) as msmd:
        for fid in target.field_ids:
            name = msmd.namesforfields(fid)[0]
            d = msmd.phasecenter(fid)
            sep = casa_env.tools().quanta().convert(
                me.separation(me.direction("J2000", f"{ra0}rad", f"{dec0}rad"), d), "rad")["value"]
            scans = list(msmd.scansforfield(fid))
            for spw in target.spws:
                r = s.get(name, {}).get("spw", {}).get(str(spw))
                if not r or not scans:
                    continue
                t_int = float(msmd.exposuretime(scan=int(scans[0]), spwid=spw)["value"])
                widths = msmd.chanwidths(spw)
                sig = thermal.visibility_sigma(float(msmd.meanfreq(spw)), float(abs(widths[0])), t_int)
                ncorr = max(int(msmd.ncorrforpol(msmd.polidfordatadesc(int(msmd.datadescids(spw=spw)[0])))), 1)
                n_per_pol = (float(r["total"]) - float(r["flagged"])) / ncorr
                terms.append((n_per_pol, sig, thermal.pb_gain(sep, target.reffreq_hz)))
    return thermal.mosaic_sigma(terms)


def _thermal_or_none(casa: Casa, vis: str, target: ImagingTarget) -> float | None:
    """A QA number: when it cannot be computed the plane is still imaged (its rms score says so)."""
    try:
        return thermal_noise(casa, vis, target)
    except Exception as e:  # noqa: BLE001
        log.warning("spw group %s: no expected thermal noise: %s", target.group, e)
        return None


def _adopt_result(tree: RunTree, target: ImagingTarget, try_number: int, token: str, done: dict) -> ImagingResult:
    """An earlier try finished the group (its images promoted, its result written) but its task was
    not recorded as a success: its task token had expired in a control-plane outage, or its worker
    was lost after the work. Its result becomes this try's, without imaging again."""
    prev = ImagingResult.from_json(done)
    before = dict(prev.qa.get("try", {}))
    qa = {**prev.qa, "try": {"number": try_number, "token": token, "fingerprint": before.get("fingerprint"),
                             "adopted_from": {"try": before.get("number"), "token": before.get("token")}}}
    result = ImagingResult.from_json({**prev.to_json(), "qa": qa})
    tries.check(tree, target.label, token)
    write_json(tree.result_json(target.label), result.to_json())
    log.warning("spw group %s: try %s had completed it (same target and pipeline version, every image present) "
                "but was not recorded as a success: its result is taken, nothing is imaged again (to image it "
                "again, delete %s)", target.group, before.get("number"), tree.result_json(target.label))
    return result


def image_group(tree: RunTree, target: ImagingTarget, try_number: int = 1) -> ImagingResult:
    w = tree.working
    tree.results.mkdir(parents=True, exist_ok=True)
    res_path, fail_path = tree.result_json(target.label), tree.failure_json(target.label)
    fp = tries.fingerprint(target.to_json(), provenance.stamp())
    done = tries.completed(tree, target.label, fp, read_json(res_path))  # before this try claims the group
    token = tries.claim(tree, target.label, try_number)
    if done is not None:
        return _adopt_result(tree, target, try_number, token, done)
    for p in (res_path, fail_path):
        remove(p)
    names = target.names
    for p in w.glob(names.imagename + ".*"):  # stale files of this group: a retry starts clean
        remove(p)
    s = tries.scratch(tree, target.label, try_number)  # this try's own folder
    remove(s)
    s.mkdir(parents=True)
    casa = Casa(w, target.label)
    t_start = time.time()
    try:
        vis = str(tree.abs(target.vis))
        info = {"masks": []}
        last = len(target.masks)
        resumed = tries.adopt(tree, target.label, try_number, fp, s)
        if resumed:
            first, info["masks"] = resumed["step"] + 1, list(resumed.get("masks", []))
            earlier_calls = list(resumed.get("calls", []))
            for j in range(first - 1):
                _drop_moved(s, names.iteration_root(j))
            log.warning("spw group %s: resuming from try %d's checkpoint after iter%d: iterations 0-%d are not "
                        "run again", target.group, resumed["from_try"], resumed["step"], resumed["step"])
        else:
            first, earlier_calls = 1, []
            casa("tclean", **H.tclean_args(target, vis, str(s / names.iteration_root(0)), 0, None))
            ensure_beams(s, names.iteration_root(0))
            if last:
                tries.checkpoint(s, 0, fp, try_number, masks=info["masks"], calls=casa.records())
        for n, m in enumerate(target.masks, start=1):
            if n < first:
                continue
            tries.check(tree, target.label, token)  # superseded (a later try started): stop here, not hours later
            for p in s.glob(names.iteration_root(n) + "*"):
                remove(p)
            if m == "pb":
                mask_arg = "pb"
            else:
                cm = s / names.name("cleanmask", n)
                how = _make_cleanmask(casa, tree.abs(m), s / names.name("pb", n - 1), cm)
                info["masks"].append({"iteration": n, "mask": m, "cleanmask": cm.name, "how": how})
                mask_arg = str(cm)
            _carry_products(s, names.iteration_root(n - 1), names.iteration_root(n))
            casa("tclean", **H.tclean_args(target, vis, str(s / names.iteration_root(n)), n, mask_arg))
            ensure_beams(s, names.iteration_root(n))
            if n < last:  # the last step's checkpoint comes after its keywords (below)
                tries.checkpoint(s, n, fp, try_number, masks=info["masks"], calls=earlier_calls + list(casa.records()))
            _drop_moved(s, names.iteration_root(n - 1))
        kw = H.vlass_keywords(target, actual_bandwidth(casa, vis, target.spws))
        for p in s.glob(names.iteration_root(last) + ".*"):
            casaimage.update_miscinfo(p, **kw, VLASSITY=H.image_type(p.name))
        tries.checkpoint(s, last, fp, try_number, masks=info["masks"], calls=earlier_calls + list(casa.records()))
        kinds = ("image", "residual", "psf", "pb", "model", "sumwt", "weight", "mask")
        missing = [k for k in kinds if not (s / names.name(k, last)).exists()]
        if missing:
            raise IncompleteProductError(f"tclean finished but products are missing: {missing}")
        tries.promote(tree, target.label, token, s, names.imagename)
        tries.discard_earlier(tree, target.label, try_number)
        images = {kind: tree.rel(w / names.name(kind, last)) for kind in kinds}
        result = ImagingResult(
            target=target, status="ok", images=images, beam=casaimage.beam(tree.abs(images["image"])),
            qa={"wall_s": round(time.time() - t_start, 2), "masks": info["masks"],
                "VLASSBW": kw["VLASSBW"], "VLASSBWN": kw["VLASSBWN"],
                "try": {"number": try_number, "token": token, "fingerprint": fp,
                        **({"resumed_from": {"try": resumed["from_try"], "after_iteration": resumed["step"]}}
                           if resumed else {})},
                "thermal_sigma_jy": _thermal_or_none(casa, vis, target)},
            tclean_calls=tuple(earlier_calls) + tuple(casa.records()), pipeline=provenance.stamp())
        tries.check(tree, target.label, token)
        write_json(res_path, result.to_json())
        tries.discard(s)
        return result
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        if tries.accepted(tree, target.label, token):  # a superseded try leaves the live one's record alone
            failed = ImagingResult(target=target, status="failed", error=err, tclean_calls=casa.records(),
                                   pipeline=provenance.stamp(),
                                   qa={"traceback": traceback.format_exc(limit=5),
                                       "try": {"number": try_number, "token": token}})
            write_json(fail_path, failed.to_json())
        if isinstance(e, tries.SupersededTryError):
            if res_path.exists():  # the live try is done (it may still be copying this try's steps, else)
                tries.discard(s)
        elif not (s / tries.CHECKPOINT).exists():
            tries.discard(s)  # else its completed steps stay for a retry to resume from
        raise
