#!/usr/bin/env python3
"""The fan-in (stages 8-12 and the weblog) at VLASS size on synthetic products (issue 15, item 4).

For each configuration (image side N, G spw groups, k workers) writes G synthetic groups exactly as
``makeimages`` leaves them (:mod:`ccip_ops.simulate.products`: ``T.iter3`` image, residual, psf, pb,
mask, sumwt, ``T.iter2.cleanmask``, beams, miscinfo, result JSON; noise plus point sources, no tclean;
model and weight, which no later stage reads, are left out to save disk), then runs pbcor, rmsimages,
cutouts, analyzestokes, export and the weblog, each in a fresh process as a DAG task would, and
reports per stage the wall time and the peak RSS: of the stage's own process, of its largest worker
process, and of all its processes together (sampled every 0.2 s). Per group: each CASA call's wall and
peak RSS from ``casa_commands.log``. With ``--slots 1 k``: issue 15's parallel check, the fan-in's wall
with k slots against 1.2 x its serial wall / k plus a fixed part measured on the smallest groups
(:func:`parallel`).

The geometry is VLASS's at every N: a 2 deg image (cell = 0.6" x 12500 / N, beam 2.5" x 12500 / N at
3 GHz), so its cutout is 1 deg + 2' (6200² at 12500²) and the rms box spans ~100 pixels (NRAO's 60"
at N = 12500; the coarse-cell rule below that, 60" x bmaj / 3.75"). The observation times export
writes into the headers are read from the simulated ``tiny`` field's MS (simulated once if absent). With ``--vlass-cell``
(0.6" and 2.5" at every N, a field N x 0.6" wide) every group has the same 60" box.

    nice python bench/vlass_scale.py --config 3125x1 3125x2 3125x3 6250x1 12500x1 [--slots 1 2] [--rounds 3]
        [--share-pixels] [--cold] [--vlass-cell] [--keep]
Writes bench/results/vlass_scale.json (configurations not re-run are kept from the previous result).
On demand only, never part of ``make test``: a 12500² group needs ~27 GB of disk and ~10 min per stage.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import RESULTS, WORK, header, load, machine, median, now, table, write_result  # noqa: E402

FIELD = "T10t02.J005000-023000"
STEPS = ("pbcor", "rmsimages", "cutouts", "analyzestokes", "export", "weblog")
VLASS_N, VLASS_CELL, VLASS_BEAM = 12500, 0.6, 2.5

CHILD = r"""
import json, sys, time
from ccip_ops import fanin, pipeline
from ccip_ops.model import RunContext
ctx = RunContext.from_json(json.loads(sys.argv[1])); step = sys.argv[2]; k = int(sys.argv[3])
t0 = time.time()
if step == "weblog":
    pipeline.weblog(ctx.field_id, ctx.run_id, sys.argv[4])
else:
    getattr(pipeline, step)(ctx, fanin.load(ctx.tree), workers=k)
print("WALL", time.time() - t0)
"""


def _sample(proc, interval=0.2, limit=None):
    """Run until ``proc`` ends (its process group is killed after ``limit`` s); (peak RSS of the stage
    process, of its largest child, of all together), bytes."""
    import os
    import signal

    import psutil

    p = psutil.Process(proc.pid)
    own = largest = total = 0
    t0 = time.time()
    while proc.poll() is None:
        if limit and time.time() - t0 > limit:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        try:
            r = p.memory_info().rss
            kids = [c.memory_info().rss for c in p.children(recursive=True)]
        except psutil.Error:
            kids, r = [], own
        own, total = max(own, r), max(total, r + sum(kids))
        largest = max([largest] + kids)
        time.sleep(interval)
    return own, largest, total


def _casa_calls(log: Path) -> list[dict]:
    """Every call in casa_commands.log: stage.label, wall, peak RSS."""
    out = []
    for m in re.finditer(r"^# (\S+): ([\d.]+) s, peak RSS ([\d.]+) MB\n(\w+)\(", log.read_text(), re.M):
        out.append({"stage": m[1], "wall_s": float(m[2]), "peak_rss_mb": float(m[3]), "task": m[4]})
    return out


def _vis(archive: Path) -> Path:
    from ccip_ops.simulate import simulate_field

    field = archive / FIELD
    if not field.exists():
        simulate_field(archive, FIELD, "tiny")
    return next(field.glob("*.ms"))


def _imdev_progress(text: str) -> float:
    """How far CASA's progress meter of the first imdev got, in percent (....10....20: one dot 2.5 %)."""
    meters = [ln for ln in text.splitlines() if ln.startswith("....") and set(ln.strip()) <= set(".0123456789%")]
    return 2.5 * meters[0].count(".") if meters else 0.0


def _stand_in_rms(tree, results, slots) -> None:
    """After a timed-out rms stage: each group's rms image as the region imdev would have made, cut
    from its pbcor image, and the fan-in state as the stage would have left it."""
    from ccip_ops import casa_env, fanin
    from ccip_ops.heuristics.stats import rms_box_arcsec, rms_margin_px, rms_region
    from ccip_ops.runtree import remove
    from ccip_ops.stages.cutouts import cutout_geometry
    from ccip_ops.stages.rmsimages import IMDEV

    fan = fanin.load(tree)
    out = []
    for r in fan.results:
        src = tree.abs(r.images["image_pbcor"])
        dst = tree.working / r.target.names.rms
        remove(dst)
        (nx, ny), cell, cut = cutout_geometry(src)
        box = rms_box_arcsec(cell, r.beam.bmaj)
        region = rms_region(cut, nx, ny, rms_margin_px(box, cell, IMDEV["grid"][0]))
        casa_env.tasks().imsubimage(imagename=str(src), outfile=str(dst), box="" if region is None else
                                    ",".join(map(str, region)), overwrite=True)
        out.append(r.adding({"rms": tree.rel(dst)}, rms_box=f"{box:.2f}arcsec", rms_region=list(region) if region else None,
                            rms_stand_in=True))
    from dataclasses import replace

    fanin.save(tree, replace(fan, results=tuple(out)))


def run_config(n: int, groups: int, slots: int, archive: Path, keep: bool, rms_limit_s: float | None = None,
               share_pixels: bool = False, cold: bool = False, vlass_cell: bool = False) -> dict:
    from ccip_ops import casa_env, fanin
    from ccip_ops.model import FanIn, RunContext, RunParams
    from ccip_ops.runtree import RunTree
    from ccip_ops.simulate.products import write_group

    work = WORK / "vlass_scale"
    run_id = f"n{n}_g{groups}_k{slots}"
    tree = RunTree.for_run(FIELD, run_id, work)
    if tree.root.exists():
        shutil.rmtree(tree.root)
    tree.make()
    cell = VLASS_CELL if vlass_cell else field_cell(n)  # --vlass-cell: 0.6" at any N, a field N x 0.6" wide
    scale = cell / VLASS_CELL
    t0 = time.time()
    res = []
    for k in range(groups):  # --share-pixels: groups after the first hard-link its pixel files (disk)
        res.append(write_group(tree, k, n, cell_arcsec=cell, beam_arcsec=VLASS_BEAM * scale, seed=k,
                               light=True, pixels_from=res[0] if share_pixels and res else None))
    write_s = time.time() - t0
    print(f"  N={n} G={groups}: products written in {write_s:.0f} s", flush=True)
    casa_env.set_log(tree.working / "bench.casa.log")
    fanin.save(tree, FanIn(targets=tuple(r.target for r in res), results=tuple(res)))
    ctx = RunContext(field_id=FIELD, run_id=run_id, root=str(tree.root), archive=str(archive),
                     params=RunParams(FIELD))
    stages = {}
    for step in STEPS:
        if step == "export":  # the observation times come from a real MS (the tiny field's)
            vis = _vis(archive)
            for p in ("SEIP_parameter.list", "CCIP_parameter.list"):
                shutil.copy2(vis.parent / p, tree.working / p)
            from dataclasses import replace as _replace

            ctx = _replace(ctx, vis=str(vis))
        if cold:
            _evict(tree.root)
        t0 = time.time()
        logf = tree.root.parent / f"{run_id}.{step}.out"
        with open(logf, "w") as fh:
            proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(ctx.to_json()), step, str(slots), str(work)],
                                    cwd=str(HERE.parent), stdout=fh, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            limit = rms_limit_s if step == "rmsimages" else None
            try:
                own, largest, total = _sample(proc, limit=limit)
            finally:  # interrupted: the stage's own process group (its CASA workers too) goes with it
                if proc.poll() is None:
                    import os
                    import signal

                    os.killpg(proc.pid, signal.SIGKILL)
        text = logf.read_text(errors="replace")
        wall = time.time() - t0
        row = {"wall_s": round(wall, 1), "peak_rss_mb": round(own / 2**20), "largest_worker_mb": round(largest / 2**20),
               "all_processes_mb": round(total / 2**20)}
        if proc.returncode != 0 and limit and wall >= limit:
            # imdev did not finish in the limit: its wall from its progress meter; downstream stages run on
            # a stand-in of the rms image (the same region of the pbcor image: same shape, not rms values)
            done = _imdev_progress(text)
            row.update(timed_out=True, imdev_progress_pct=done,
                       wall_estimated_s=round(wall * 100 / done) if done else None)
            _stand_in_rms(tree, res, slots)
        elif proc.returncode != 0:
            print(text[-3000:])
            raise SystemExit(f"{step} failed at N={n}, G={groups}")
        stages[step] = row
        print(f"  N={n} G={groups} k={slots} {step}: {stages[step]}", flush=True)
    inodes = {(st.st_dev, st.st_ino): st.st_size for st in (f.stat() for f in tree.root.rglob("*") if f.is_file())}
    du = sum(inodes.values())  # a hard-linked pixel file (--share-pixels) once
    out = {"n": n, "groups": groups, "slots": slots, "cell_arcsec": cell, "write_s": round(write_s, 1),
           "share_pixels": share_pixels, "cold": cold,
           "disk_gb": round(du / 1e9, 1), "stages": stages, "casa_calls": _casa_calls(tree.working / "casa_commands.log"),
           "rms_box": [r.get("rms_box") for r in _rms_boxes(tree)], "at": now()}
    if not keep:
        shutil.rmtree(tree.root)
    return out


def _evict(root: Path) -> None:
    """The run tree's files out of the page cache (written back first), CASA's libraries left in it."""
    import os

    for f in root.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def combine(runs: list[dict]) -> dict:
    """Several runs of one configuration: per stage the median wall (each run's in ``wall_s_rounds``)
    and the largest peak RSS; the CASA calls of each run."""
    if len(runs) == 1:
        return runs[0]
    c = dict(runs[-1], rounds=len(runs), write_s=median([r["write_s"] for r in runs]),
             casa_calls_rounds=[r["casa_calls"] for r in runs])
    c["stages"] = {}
    for step in STEPS:
        rows = [r["stages"][step] for r in runs]
        walls = [stage_wall(r, step) for r in runs]
        c["stages"][step] = {"wall_s": round(median(walls), 1), "wall_s_rounds": walls,
                             **{k: max(x[k] for x in rows) for k in ("peak_rss_mb", "largest_worker_mb", "all_processes_mb")}}
    return c


FANIN = STEPS[:-1]  # pbcor to export work on the groups; the weblog is one process over all of them


def _fanin_wall(c: dict) -> float:
    return sum(stage_wall(c, s) for s in FANIN)


def _imdev(c: dict) -> dict:
    """Each group's imdev wall (the rms stage's one long CASA call), median over the runs."""
    per: dict[str, list] = {}
    for calls in c.get("casa_calls_rounds") or [c["casa_calls"]]:
        for x in calls:
            if x["task"] == "imdev":
                per.setdefault(x["stage"].split(".", 1)[1], []).append(x["wall_s"])
    return {g: round(median(w), 1) for g, w in sorted(per.items())}


def parallel(configs: list[dict]) -> dict:
    """For each size and group count measured with k = 1 and k > 1: the fan-in's wall (pbcor to
    export, each stage in its own process as a DAG task) serially, S, and with k slots, P; P / (S/k);
    and issue 15's check P <= 1.2 x S/k + fixed. The fixed part is measured, not fitted: P - S/k on the
    smallest groups run with the same k (there each group's own work is a second or so, so what
    remains is starting k spawned workers that import CASA, and handing the results back). Each
    group's imdev alone and with k slots shows whether the groups slowed each other down; when the
    groups differ in size, the longest bounds P from below however they are scheduled."""
    by = {(c["n"], c["groups"], c["slots"]): c for c in configs}
    pairs = sorted(key for key in by if key[2] > 1 and (key[0], key[1], 1) in by)
    if not pairs:
        return {}
    fixed = {}
    for n, g, k in sorted(pairs):  # the smallest size measured with this k
        fixed.setdefault(k, (f"{n}x{g}", _fanin_wall(by[n, g, k]) - _fanin_wall(by[n, g, 1]) / k))
    out = {}
    for n, g, k in pairs:
        one, many = by[n, g, 1], by[n, g, k]
        s, p = _fanin_wall(one), _fanin_wall(many)
        src, f = fixed[k]
        bound = 1.2 * s / k + f
        out[f"{n}x{g} k={k}"] = {
            "serial_s": round(s, 1), "parallel_s": round(p, 1), "ratio_to_serial_over_k": round(p / (s / k), 3),
            "fixed_s": round(f, 1), "fixed_measured_at": src, "bound_s": round(bound, 1), "within": p <= bound,
            "rounds": [one.get("rounds", 1), many.get("rounds", 1)],
            "stages": {st: [stage_wall(one, st), stage_wall(many, st)] for st in FANIN},
            "imdev_alone_s": _imdev(one), "imdev_with_k_s": _imdev(many)}
    return out


def _rms_boxes(tree):
    from ccip_ops import fanin

    fan = fanin.load(tree)
    return [dict(r.qa) for r in fan.results] if fan else []


def stage_wall(c: dict, step: str) -> float:
    """The stage's wall; for an rms stage stopped at its limit, imdev's estimated wall per group times
    the groups over the workers (each worker runs its groups' imdev one after another)."""
    st = c["stages"][step]
    if st.get("timed_out") and st.get("wall_estimated_s"):
        return st["wall_estimated_s"] * -(-c["groups"] // c["slots"])
    return st["wall_s"]


def field_cell(n: int) -> float:
    """The cell of VLASS's 2 deg field on N pixels."""
    return VLASS_CELL * VLASS_N / n


def extrapolate(configs: list[dict]) -> dict:
    """Per stage: the linear fit wall = fixed + per_group x groups over the group counts measured at one
    size (k = 1); the per-group part scaled by pixels to 12500² (each stage's work is per pixel: box
    reads, imdev grid points x a box of ~100 pixels at every size); then 16 groups serially and over
    k = 4, 16 slots (fixed + ceil(16 / k) x per group). Memory: the largest peak RSS of any process."""
    import numpy as np

    out = {}
    multi = {}
    for c in configs:  # scaled by pixels to 12500²: only VLASS's 2 deg field, not a --vlass-cell one
        if c["slots"] == 1 and math.isclose(c["cell_arcsec"], field_cell(c["n"])):
            multi.setdefault(c["n"], {})[c["groups"]] = c
    n_multi = max((n for n, g in multi.items() if len(g) >= 2), default=None)
    if n_multi is None:
        return out
    g = sorted(multi[n_multi])
    big = max(multi)
    for step in STEPS:
        w = [stage_wall(multi[n_multi][x], step) for x in g]
        per, fixed = (float(v) for v in np.polyfit(g, w, 1))
        one_big = stage_wall(multi[big][min(multi[big])], step)
        per_big = max(one_big - fixed, 0.0) * (VLASS_N / big) ** 2
        out[step] = {"fit_at_n": n_multi, "per_group_s": round(per, 2), "fixed_s": round(fixed, 2),
                     "peak_rss_mb_by_groups": [multi[n_multi][x]["stages"][step]["peak_rss_mb"] for x in g],
                     "scaled_from_n": big, "per_group_s_at_12500": round(per_big, 1),
                     "wall_16_groups_s": {f"k{k}": round(fixed + -(-16 // k) * per_big) for k in (1, 4, 16)}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="*", default=["3125x1", "3125x2", "3125x3", "6250x1", "12500x1"],
                    help="NxG: image side N, G groups")
    ap.add_argument("--slots", type=int, nargs="+", default=[1], help="workers per fan-in task")
    ap.add_argument("--archive", type=Path, default=WORK / "archive")
    ap.add_argument("--keep", action="store_true", help="keep the run trees under bench/.work/vlass_scale")
    ap.add_argument("--rms-limit-s", type=float, default=None,
                    help="stop the rms stage after this long and estimate its wall from imdev's progress meter")
    ap.add_argument("--name", default="vlass_scale", help="bench/results/<name>.json")
    ap.add_argument("--merge", nargs="*", default=[], help="also summarise bench/results/<name>.json of these")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each configuration (walls: medians)")
    ap.add_argument("--share-pixels", action="store_true",
                    help="groups after the first hard-link its pixel files (3 groups at 12500² in ~50 GB)")
    ap.add_argument("--vlass-cell", action="store_true",
                    help="VLASS's 0.6\" cell and 2.5\" beam at every N (a smaller field, NRAO's 60\" rms box in every "
                         "group, so the groups' rms work is equal) instead of VLASS's 2 deg field at a coarser cell")
    ap.add_argument("--cold", action="store_true",
                    help="before each stage, the run tree's files leave the page cache: every stage reads its inputs "
                         "from disk, as a VLASS field's would be (CASA's libraries stay cached, as on a worker)")
    a = ap.parse_args(argv)
    m, before = machine(), load()
    prev = RESULTS / f"{a.name}.json"
    old = json.loads(prev.read_text()).get("configs", []) if prev.exists() else []
    for other in a.merge:  # configurations measured in other invocations (their own --name)
        old += json.loads((RESULTS / f"{other}.json").read_text())["configs"]
    keyed = {(c["n"], c["groups"], c["slots"]): c for c in old}

    def save():
        configs = sorted(keyed.values(), key=lambda c: (c["n"], c["groups"], c["slots"]))
        result = {"machine": m, "load_before": before, "load_after": load(), "configs": configs,
                  "extrapolation": extrapolate(configs), "parallel": parallel(configs)}
        return write_result(a.name, result), result, configs

    runs: dict[tuple, list] = {}
    for spec in a.config:  # the result is written after each run: an interruption keeps the rest
        n, g = map(int, spec.lower().split("x"))
        for _ in range(a.rounds):  # k = 1 and k > 1 alternate, so both meet the same machine
            for k in a.slots:
                runs.setdefault((n, g, k), []).append(
                    run_config(n, g, k, a.archive, a.keep, a.rms_limit_s, a.share_pixels, a.cold, a.vlass_cell))
                keyed[(n, g, k)] = combine(runs[(n, g, k)])
                save()
    out, result, configs = save()
    print(header("fan-in at VLASS size (synthetic products)", m, before, result["load_after"]))
    rows = [(c["n"], c["groups"], c["slots"], s, round(stage_wall(c, s), 1), c["stages"][s]["peak_rss_mb"],
             c["stages"][s]["largest_worker_mb"], c["stages"][s]["all_processes_mb"]) for c in configs for s in STEPS]
    print(table(("N", "groups", "k", "stage", "wall s", "RSS MB", "worker MB", "all MB"), rows))
    print(json.dumps(result["extrapolation"], indent=1))
    if result["parallel"]:
        print(table(("config", "serial s", "k slots s", "/ (serial/k)", "fixed s", "bound s", "within"),
                    [(key, p["serial_s"], p["parallel_s"], p["ratio_to_serial_over_k"], p["fixed_s"], p["bound_s"],
                      p["within"]) for key, p in result["parallel"].items()]))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
