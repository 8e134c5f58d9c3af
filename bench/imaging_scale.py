#!/usr/bin/env python3
"""Imaging cost per spw group against image size (issue: cube imaging).

Simulates the `tiny` field (once, cached under bench/.work), runs stages 1-6 serially, then
images one spw group at several image sizes over the same sky (fixed field of view, finer
cells), each in a fresh process, ``--repeats`` times. Reports per size the median wall time
of the whole imaging task, the time inside tclean, the task's own overhead (everything
else: mask copies, product moves, beam checks, keywords), and the peak resident memory.
Also fits the exponent of wall time and memory against pixel count.

    python bench/imaging_scale.py [--sizes 256 512 1024] [--repeats 3] [--group 10,11,12,13]
Writes bench/results/imaging_scale.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CHILD = r"""
import json, sys, time, psutil, threading
from pathlib import Path
from ccip_ops.runtree import RunTree
from ccip_ops.model import ImagingTarget
from ccip_ops.stages import makeimages
proc = psutil.Process(); peak = [proc.memory_info().rss]; stop = threading.Event()
def sample():
    while not stop.wait(0.1):
        peak[0] = max(peak[0], proc.memory_info().rss)
threading.Thread(target=sample, daemon=True).start()
t0 = time.time()
r = makeimages.run(RunTree(Path(sys.argv[1])), ImagingTarget.from_json(json.loads(sys.argv[2])))
wall = time.time() - t0
stop.set()
calls = r.tclean_calls
print(json.dumps({"wall_s": wall, "tclean_s": sum(c["wall_s"] for c in calls if c["task"] == "tclean"),
                  "casa_s": sum(c["wall_s"] for c in calls), "peak_rss_mb": max(peak) / 2**20,
                  "tclean_peak_mb": max(c["peak_rss_mb"] for c in calls)}))
"""


def machine() -> dict:
    import psutil

    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}


def prepare(work: Path, field_id: str) -> tuple:
    from ccip_ops import pipeline
    from ccip_ops.simulate import simulate_field

    archive = work / "archive"
    if not (archive / field_id).exists():
        simulate_field(archive, field_id, "tiny")
    ctx_file = work / "ctx.json"
    if ctx_file.exists():
        ctx = json.loads(ctx_file.read_text())
        targets = json.loads((Path(ctx["root"]) / "working" / "ccip_targets.json").read_text())["targets"]
        return ctx, targets
    ctx = pipeline.stage_inputs(field_id, "bench", {}, str(archive), str(work / "runs"))
    for step in (pipeline.editimlist_seip, pipeline.transform, pipeline.restorepims, pipeline.flagtargets):
        ctx = step(ctx)
    targets = pipeline.editimlist_ccip(ctx)
    ctx_file.write_text(json.dumps(ctx))
    return ctx, targets


def fit_exponent(x, y):
    import numpy as np

    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--fov-arcsec", type=float, default=1600.0, help="image width kept fixed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--group", default="10,11,12,13")
    a = ap.parse_args()
    from ccip_ops.simulate import DEFAULT_FIELD_ID

    work = HERE / ".work"
    work.mkdir(exist_ok=True)
    ctx, targets = prepare(work, DEFAULT_FIELD_ID)
    base = next(t for t in targets if t["group"] == a.group)
    root = Path(ctx["root"])
    rows = []
    for n in a.sizes:
        cell = a.fov_arcsec / n
        runs = []
        for k in range(a.repeats):
            t = {**base, "imsize": [n, n], "cell": f"{cell:.4f}arcsec", "label": f"{base['label']}_n{n}",
                 "imagename": f"{base['imagename']}_n{n}"}
            out = subprocess.run([sys.executable, "-c", CHILD, str(root), json.dumps(t)], capture_output=True,
                                 text=True, cwd=str(work))
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            for p in (root / "working").glob(t["imagename"] + ".*"):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        med["overhead_s"] = med["wall_s"] - med["casa_s"]
        med["tclean_share"] = med["tclean_s"] / med["wall_s"]
        rows.append({"imsize": n, "pixels": n * n, "cell_arcsec": cell, "runs": runs, **med})
    px = [r["pixels"] for r in rows]
    result = {"benchmark": "imaging_scale", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), "group": a.group, "fov_arcsec": a.fov_arcsec, "repeats": a.repeats,
              "rows": rows,
              "exponent_wall_vs_pixels": fit_exponent(px, [r["wall_s"] for r in rows]),
              "exponent_mem_vs_pixels": fit_exponent(px, [r["peak_rss_mb"] for r in rows])}
    m = result["machine"]
    print(f"imaging one spw group ({a.group}), medians of {a.repeats}; machine: {m['cores']} cores, {m['memory_gib']} GiB")
    head = ("imsize", "cell_as", "wall s", "tclean s", "overhead s", "tclean %", "peak MB")
    print("{:>7} {:>7} {:>8} {:>9} {:>10} {:>8} {:>8}".format(*head))
    for r in rows:
        print(f"{r['imsize']:>7} {r['cell_arcsec']:>7.3f} {r['wall_s']:>8.1f} {r['tclean_s']:>9.1f} "
              f"{r['overhead_s']:>10.2f} {100 * r['tclean_share']:>7.1f}% {r['peak_rss_mb']:>8.0f}")
    print(f"wall ~ pixels^{result['exponent_wall_vs_pixels']:.2f}, peak memory ~ pixels^{result['exponent_mem_vs_pixels']:.2f}")
    out = HERE / "results" / "imaging_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
