"""The recipe as steps: what each DAG task does, and the same steps run serially (``ccip run``).

Each step takes and returns small JSON (the run context, targets, results), so the Airflow
tasks are thin wrappers and the serial runner is a loop. Everything a step leaves for later
steps is also on disk in the run tree: the weblog renders from disk, whatever failed.
"""
from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path

from . import PIPELINE_VERSION, casa_env
from .heuristics import planes as planesmod
from .model import CcipInputError, ImagingResult, ImagingTarget
from .runtree import RunTree, archive_root, check_field_id

log = logging.getLogger("ccip")

STAGES = [  # (number, name as in the NRAO recipe, step)
    (1, "hifv_importdata (stage inputs)", "stage_inputs"),
    (2, "hif_editimlist (SEIP)", "editimlist_seip"),
    (3, "hif_transformimagedata", "transform"),
    (4, "hifv_restorepims", "restorepims"),
    (5, "hifv_flagtargetsdata", "flagtargets"),
    (6, "hif_editimlist (CCIP)", "editimlist_ccip"),
    (7, "hif_makeimages", "image_spw_group"),
    (8, "hifv_pbcor", "pbcor"),
    (9, "hif_makermsimages", "rmsimages"),
    (10, "hif_makecutoutimages", "cutouts"),
    (11, "hifv_analyzestokescubes", "analyzestokes"),
    (12, "hifv_exportvlassdata", "export"),
]


def tree_of(ctx: dict) -> RunTree:
    return RunTree(Path(ctx["root"]))


def _stage_record(tree: RunTree, step: str, status: str, seconds: float, notes: str = "", qa: float | None = None):
    path = tree.working / "stages.json"
    d = json.loads(path.read_text()) if path.exists() else {}
    d[step] = {"status": status, "seconds": round(seconds, 2), "notes": notes, "qa": qa}
    tmp = path.with_name("stages.json.partial")
    tmp.write_text(json.dumps(d, indent=1))
    tmp.replace(path)


class _timed:
    def __init__(self, tree: RunTree, step: str):
        self.tree, self.step, self.notes, self.qa = tree, step, "", 1.0

    def __enter__(self):
        self.t0 = time.time()
        return self

    def __exit__(self, et, e, tb):
        if et is None:
            _stage_record(self.tree, self.step, "ok", time.time() - self.t0, self.notes, self.qa)
        else:
            _stage_record(self.tree, self.step, "failed", time.time() - self.t0, f"{et.__name__}: {e}", 0.0)
        return False


# ---- stages 1-6 -------------------------------------------------------------------------

def stage_inputs(field_id: str, run_id: str, params: dict | None = None, archive: str | None = None,
                 work: str | None = None) -> dict:
    from .stages import stage_inputs as st

    check_field_id(field_id)
    tree = RunTree.for_run(field_id, run_id, Path(work) if work else None).make()
    arch = Path(archive) if archive else archive_root()
    with _timed(tree, "stage_inputs") as t:
        found = st.run(arch, field_id, tree)
        t.notes = f"PIMS {Path(found['pims']).name}"
    ctx = {"field_id": field_id, "run_id": run_id, "root": str(tree.root), "archive": str(arch),
           "pims": found["pims"], "name": found["name"], "params": params or {}}
    (tree.products / "run_params.json").write_text(json.dumps(
        {"field_id": field_id, "run_id": run_id, "params": params or {}, "pipeline_version": PIPELINE_VERSION,
         "archive": str(arch), "casa": casa_env.versions()}, indent=1))
    return ctx


def editimlist_seip(ctx: dict) -> dict:
    from .stages import editimlist

    tree = tree_of(ctx)
    with _timed(tree, "editimlist_seip") as t:
        seip = editimlist.run_seip(tree)
        t.notes = seip["imagename"]
    return {**ctx, "seip": seip}


def transform(ctx: dict) -> dict:
    from .stages import transform as st

    tree = tree_of(ctx)
    with _timed(tree, "transform") as t:
        vis = st.run(tree, ctx["pims"], ctx["seip"])
        t.notes = Path(vis).name
    return {**ctx, "vis": vis}


def restorepims(ctx: dict) -> dict:
    from .stages import restorepims as st

    tree = tree_of(ctx)
    with _timed(tree, "restorepims") as t:
        out = st.run(tree, ctx["vis"], ctx["seip"])
        t.notes = "re-run on a restored MS" if out["rerun"] else "restored FLAG, WEIGHT, MODEL_DATA, CORRECTED_DATA"
    return {**ctx, "masks": out["mask_list"]}


def flagtargets(ctx: dict) -> dict:
    from .stages import flagtargets as st

    tree = tree_of(ctx)
    with _timed(tree, "flagtargets") as t:
        s = st.run(tree, ctx["vis"])
        if "template" in s and s["template"].get("total"):
            t.notes = f"{100 * s['template']['flagged'] / s['template']['total']:.1f}% flagged after template"
    return ctx


def editimlist_ccip(ctx: dict) -> list[dict]:
    from .stages import editimlist

    tree = tree_of(ctx)
    p = ctx.get("params") or {}
    with _timed(tree, "editimlist_ccip") as t:
        targets = editimlist.run_ccip(tree, ctx["vis"], ctx["masks"], p.get("spw_groups") or None,
                                      p.get("imaging_overrides") or None)
        s = json.loads((tree.working / "ccip_targets.json").read_text())
        t.notes = f"{len(targets)} targets" + (f"; skipped (100% flagged): {s['skipped_flagged']}"
                                              if s["skipped_flagged"] else "")
    return [x.to_json() for x in targets]


# ---- stage 7: one spw group ---------------------------------------------------------------

def _xcom_result(r: ImagingResult) -> dict:
    """The result as it travels by XCom: the call records without their full parameters."""
    d = r.to_json()
    d["tclean_calls"] = [{"task": c["task"], "wall_s": c["wall_s"], "peak_rss_mb": c["peak_rss_mb"],
                          "imagename": c.get("imagename") or Path(str(c.get("params", {}).get("imagename", ""))).name}
                         for c in r.tclean_calls]
    return d


def image_spw_group(ctx: dict, target: dict) -> dict:
    from .stages import makeimages

    tree = tree_of(ctx)
    t = ImagingTarget.from_json(target)
    fault = (ctx.get("params") or {}).get("fault_groups") or []
    if t.group in fault or t.label in fault:
        # operator-requested fault injection (tests, drills): fail this group as a real error would
        tree.results.mkdir(parents=True, exist_ok=True)
        err = ImagingResult(target=t, status="failed", error=f"fault injected for spw group {t.group} (params.fault_groups)")
        (tree.results / f"{t.label}.failed.json").write_text(json.dumps(err.to_json(), indent=1))
        raise RuntimeError(err.error)
    return _xcom_result(makeimages.run(tree, t))


# ---- fan-in ------------------------------------------------------------------------------

def collect(ctx: dict, targets: list[dict], results: list[dict | None]) -> dict:
    """Start of the fan-in: results of the groups that succeeded, errors of the others."""
    tree = tree_of(ctx)
    ok = {}
    for r in results or []:
        if r:
            rr = ImagingResult.from_json(r)
            if rr.status == "ok":
                ok[rr.target.label] = rr
    failed = []
    for t in targets:
        label = t["label"]
        if label in ok:
            continue
        disk = tree.results / f"{label}.json"
        if disk.exists():  # succeeded on disk (e.g. XCom not readable): trust the complete result
            ok[label] = ImagingResult.from_json(disk.read_text())
            continue
        fp = tree.results / f"{label}.failed.json"
        err = json.loads(fp.read_text()).get("error") if fp.exists() else "the task ended without a result"
        failed.append({"group": t["group"], "label": label, "error": err})
    return {"results": [_xcom_result(r) for r in ok.values()], "failed": failed, "targets": targets}


def _per_result(ctx: dict, fanin: dict, step: str, fn) -> dict:
    tree = tree_of(ctx)
    out, failed = [], list(fanin["failed"])
    with _timed(tree, step) as t:
        for r in fanin["results"]:
            rr = ImagingResult.from_json(r)
            try:
                out.append(_xcom_result(fn(tree, rr)))
            except Exception as e:
                log.error("%s failed for spw group %s: %s", step, rr.target.group, e)
                failed.append({"group": rr.target.group, "label": rr.target.label, "error": f"{step}: {e}"})
        if not out:
            raise RuntimeError(f"{step}: no spw group left: " + "; ".join(f"{f['group']}: {f['error']}" for f in failed))
        t.notes = f"{len(out)} groups" + (f", {len(failed)} failed" if failed else "")
        t.qa = len(out) / max(len(out) + len(failed), 1)
    res = {**fanin, "results": out, "failed": failed}
    (tree.working / "fanin.json").write_text(json.dumps(res, indent=1))
    return res


def pbcor(ctx: dict, fanin: dict) -> dict:
    from .stages import pbcor as st

    out = _per_result(ctx, fanin, "pbcor", st.run)
    tree = tree_of(ctx)
    plist = [{"group": r["target"]["group"], "label": r["target"]["label"], "spws": r["target"]["spws"],
              "freq": r["target"]["reffreq_hz"], "bmaj": r["beam"]["bmaj"], "bmin": r["beam"]["bmin"],
              "flagpct": r["target"]["flagpct"]} for r in out["results"]]
    planes = planesmod.keep_flags(plist)
    _mark_rejected(tree, out["results"], planes)
    out["planes"] = planes
    (tree.working / "planes.json").write_text(json.dumps(planes, indent=1))
    (tree.working / "fanin.json").write_text(json.dumps(out, indent=1))
    return out


def _mark_rejected(tree: RunTree, results: list[dict], planes: list[dict]) -> None:
    ia = casa_env.tools().image()
    keep = {p["label"]: p["keep"] for p in planes}
    for r in results:
        img = tree.abs(r["images"]["image"])
        base = str(img)[: -len(".image.tt0")]
        for p in Path(base).parent.glob(Path(base).name + ".*"):
            ia.open(str(p))
            mi = ia.miscinfo()
            mi["VLASSRJ"] = not keep[r["target"]["label"]]
            ia.setmiscinfo(mi)
            ia.close()


def rmsimages(ctx: dict, fanin: dict) -> dict:
    from .stages import rmsimages as st

    return _per_result(ctx, fanin, "rmsimages", st.run)


def cutouts(ctx: dict, fanin: dict) -> dict:
    from .stages import cutouts as st

    return _per_result(ctx, fanin, "cutouts", st.run)


def analyzestokes(ctx: dict, fanin: dict) -> dict:
    from .stages import analyzestokes as st

    tree = tree_of(ctx)
    with _timed(tree, "analyzestokes") as t:
        res = st.run(tree, [ImagingResult.from_json(r) for r in fanin["results"]], fanin["planes"])
        rm = (res["regions"].get("peak_linpolint") or {}).get("rotation_measure")
        pw = (res["regions"].get("peak_stokesi") or {}).get("power_law_point_source")
        t.notes = "; ".join(
            ([f"RM at the polarised peak: {rm['rm_rad_m2']:.1f} ± {rm['rm_err']:.1f} rad/m²"] if rm else [])
            + ([f"spectral index at the Stokes-I peak: {pw['alpha']:.2f}"] if pw else []))
    return fanin


def export(ctx: dict, fanin: dict) -> dict:
    from .stages import export as st

    tree = tree_of(ctx)
    with _timed(tree, "export") as t:
        out = st.run(tree, [ImagingResult.from_json(r) for r in fanin["results"]], fanin["planes"], ctx["vis"])
        t.notes = f"{len(out['fits'])} FITS"
    return {**fanin, "products": out["fits"]}


# ---- weblog and the run's final state -----------------------------------------------------

def report(ctx: dict) -> dict:
    """Everything the weblog shows, read from the run tree (works whatever failed)."""
    tree = tree_of(ctx)
    w = tree.working

    def load(name, default):
        p = w / name
        return json.loads(p.read_text()) if p.exists() else default

    stages = load("stages.json", {})
    tg = load("ccip_targets.json", {"targets": [], "skipped_flagged": [], "rejected_nfield": []})
    planes = load("planes.json", [])
    results, failed = [], []
    status_of = {}
    for t in tg["targets"]:
        ok, bad = tree.results / f"{t['label']}.json", tree.results / f"{t['label']}.failed.json"
        if ok.exists():
            results.append(json.loads(ok.read_text()))
            status_of[t["label"]] = "imaged"
        elif bad.exists():
            e = json.loads(bad.read_text())
            failed.append(f"spw group {t['group']} ({t['label']}) failed: {e.get('error')}")
            status_of[t["label"]] = "FAILED"
    fan = load("fanin.json", {"results": [], "failed": []})
    for f in fan.get("failed", []):
        msg = f"spw group {f['group']} ({f['label']}) failed: {f['error']}"
        if status_of.get(f["label"]) != "FAILED" and msg not in failed:
            failed.append(msg)
    errors = list(failed)
    failed_groups = [t["group"] for t in tg["targets"] if status_of.get(t["label"]) == "FAILED"] + [
        f["group"] for f in fan.get("failed", []) if status_of.get(f["label"]) != "FAILED"]
    rows = []
    for num, name, step in STAGES:
        s = stages.get(step)
        if step == "image_spw_group":
            n_ok = sum(1 for v in status_of.values() if v == "imaged")
            n = len(tg["targets"])
            s = {"status": "ok" if n and n_ok == n else "failed" if n else "not run",
                 "qa": (n_ok / n) if n else None, "notes": f"{n_ok} of {n} spw groups imaged"}
            kept = [p for p in planes if p["keep"]]
            if planes:
                s["notes"] += f"; {len(planes) - len(kept)} of {len(planes)} imaged planes are rejected"
        s = s or {"status": "not run", "qa": None, "notes": ""}
        if s["status"] == "failed" and step != "image_spw_group":
            errors.append(f"stage {num} {name} failed: {s['notes']}")
        rows.append({"number": num, "name": name, "step": step, "qa": s.get("qa"), "notes": s.get("notes", ""),
                     "status": s.get("status", "not run"), "seconds": s.get("seconds")})
    if stages.get("run", {}).get("status") == "failed":
        errors.append(f"run failed: {stages['run']['notes']}")
    warnings = [f"spw group {g} is 100% flagged and was skipped as an imaging target" for g in tg["skipped_flagged"]]
    warnings += [f"spw group {g} rejected: too many fields flagged (PIPE-1800)" for g in tg.get("rejected_nfield", [])]
    tclean = [{"group": r["target"]["group"], "imagename": Path(str(c["params"].get("imagename", ""))).name,
               "wall_s": c["wall_s"], "peak_rss_mb": c["peak_rss_mb"]}
              for r in results for c in r.get("tclean_calls", []) if c["task"] == "tclean"]
    try:
        from .weblog import thumbnails

        ok_fan = [r for r in fan.get("results", []) if r.get("images", {}).get("image_pbcor_subim")]
        thumbs = thumbnails(tree, ok_fan)
    except Exception as e:  # the report must render even when images are broken
        log.warning("thumbnails failed: %s", e)
        thumbs = {}
    plots = sorted(str(p.relative_to(tree.html)) for p in (tree.html / "stage11").glob("*.png")) \
        if (tree.html / "stage11").exists() else []
    res_tab = load("restorepims_resources.json", {})
    state = "failed" if errors else "success"
    return {"field_id": ctx["field_id"], "run_id": ctx["run_id"], "pipeline_version": PIPELINE_VERSION,
            "casa_versions": ", ".join(f"{k} {v}" for k, v in casa_env.versions().items()),
            "state": state, "errors": errors, "warnings": warnings, "stages": rows, "targets": tg["targets"],
            "status_of": status_of, "planes": planes, "thumbs": thumbs, "tclean": tclean, "plots": plots,
            "resources": res_tab, "analysis": load("analyzestokes.json", {}),
            "flagsummary": load("flagtargets_summary.json", {}), "seip": load("seip_target.json", {}),
            "run_params": _load_json(tree.products / "run_params.json", {}),
            "skipped_flagged": tg.get("skipped_flagged", []), "failed_groups": failed_groups}


def _load_json(path: Path, default):
    try:
        return json.loads(path.read_text()) if path.exists() else default
    except ValueError:
        return default


def weblog(ctx: dict) -> str:
    from .weblog import render

    tree = tree_of(ctx)
    path = render(tree, report(ctx))
    return str(path)


def report_errors(tree: RunTree) -> list[str]:
    p = tree.html / "report.json"
    return json.loads(p.read_text()).get("errors", []) if p.exists() else ["no report was written"]


# ---- serial runner -------------------------------------------------------------------------

def run_serial(field_id: str, run_id: str | None = None, params: dict | None = None,
               archive: str | None = None, work: str | None = None) -> dict:
    """All stages in this process, without Airflow (``ccip run``). Returns the summary."""
    run_id = run_id or time.strftime("serial__%Y%m%dT%H%M%S", time.gmtime())
    t0 = time.time()
    ctx = {"field_id": field_id, "run_id": run_id,
           "root": str(RunTree.for_run(field_id, run_id, Path(work) if work else None).root)}
    try:
        ctx = stage_inputs(field_id, run_id, params, archive, work)
        for step in (editimlist_seip, transform, restorepims, flagtargets):
            ctx = step(ctx)
        targets = editimlist_ccip(ctx)
        results = []
        for t in targets:
            try:
                results.append(image_spw_group(ctx, t))
            except Exception as e:
                log.error("spw group %s failed: %s", t["group"], e)
                log.debug("%s", traceback.format_exc())
        fan = collect(ctx, targets, results)
        if not fan["results"]:
            raise RuntimeError("every spw group failed")
        for step in (pbcor, rmsimages, cutouts, analyzestokes, export):
            fan = step(ctx, fan)
    except CcipInputError:
        raise
    except Exception as e:
        log.error("run failed: %s", e)
        _stage_record(tree_of(ctx), "run", "failed", time.time() - t0, f"{type(e).__name__}: {e}", 0.0)
    finally:
        if Path(ctx["root"]).exists():
            weblog(ctx)
    tree = tree_of(ctx)
    return {"run_tree": str(tree.root), "weblog": str(tree.html / "index.html"),
            "products": str(tree.products), "errors": report_errors(tree), "seconds": round(time.time() - t0, 1)}
