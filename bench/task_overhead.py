#!/usr/bin/env python3
"""Per-task CASA start-up (issue 15 item 5): what a fresh task process spends before its first CASA
call, as a mapped imaging task does after Airflow hands it over.

Each round is a fresh ``python`` that times, from its own start: importing ``ccip_ops`` (the stage
code), configuring CASA and importing ``casatools``, importing the one casatasks task the stage
calls (``casa_env.tasks()``: per-task import), and the first call (``imhead`` on a 64² image made
beforehand). The same with ``CCIP_CASATASKS_FULL=1`` (``import casatasks`` as before) for the
comparison. Medians over the rounds.

    python bench/task_overhead.py [--rounds 7]
Writes bench/results/task_overhead.json. On demand only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import header, load, machine, median, write_result  # noqa: E402

CHILD = r"""
import time, json, sys
t0 = float(sys.argv[2])
marks = {"python_start": time.time() - t0}
from ccip_ops import casa_env, settings  # noqa: F401
from ccip_ops.stages import _casa  # noqa: F401
marks["ccip_ops"] = time.time() - t0
casa_env.tools()
marks["casatools"] = time.time() - t0
tk = casa_env.tasks()
imhead = tk.imhead
marks["casatask_import"] = time.time() - t0
imhead(imagename=sys.argv[1], mode="list")
marks["first_call_done"] = time.time() - t0
print("MARKS", json.dumps(marks))
"""


def _image(d: Path) -> str:
    code = ("from ccip_ops import casa_env; ia = casa_env.tools().image(); "
            f"ia.fromshape({str(d / 'x.im')!r}, [64, 64, 1, 1]); ia.close()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE.parent, capture_output=True)
    return str(d / "x.im")


def _round(img: str, full: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    env.pop("CCIP_CASATASKS_FULL", None)
    if full:
        env["CCIP_CASATASKS_FULL"] = "1"
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, img, repr(t0)], env=env, cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MARKS "))
    return json.loads(line[6:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ccip-overhead-") as d:
        img = _image(Path(d))
        before = load()
        runs = {"per_task": [], "full": []}
        for _ in range(a.rounds):  # interleaved, so that both see the same machine
            runs["per_task"].append(_round(img, False))
            runs["full"].append(_round(img, True))
        after = load()
    med = {k: {m: round(median([r[m] for r in v]), 3) for m in v[0]} for k, v in runs.items()}
    m = machine()
    print(header("per-task CASA start-up", m, before, after))
    result = {"machine": m, "load_before": before, "load_after": after, "rounds": a.rounds, "median_s": med,
              "runs": runs}
    path = write_result("task_overhead", result)
    for k, m in med.items():
        print(f"{k:9s}: " + ", ".join(f"{n} {v:.2f} s" for n, v in m.items()))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
