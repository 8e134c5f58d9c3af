#!/usr/bin/env python3
"""DAG parse time of every file in dags/ (issue 8, item 5).

Each file is parsed ``--repeats`` times, each time in a fresh process (as Airflow's DAG processor
does), with Airflow already imported: what is timed is the file's own cost (its module code,
its imports, building the DAG objects), once as Airflow's DagBag reports it and once as the wall
time around ``DagBag(<file>)``. The import of Airflow itself is reported separately: it is
paid once per processor, not per file. Nothing heavy (CASA, numpy) may be imported at parse
time; the child also reports whether casatools/casatasks/numpy got imported.

    python bench/dag_parse.py [--repeats 5]
Writes bench/results/dag_parse.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

from _common import ROOT, header, load, machine, median, now, table, write_result

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import airflow
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
t2 = time.perf_counter()
stats = list(bag.dagbag_stats)
print(json.dumps({"import_airflow_s": t1 - t0, "dagbag_wall_s": t2 - t1,
                  "airflow_reported_s": sum(s.duration.total_seconds() for s in stats),
                  "dags": sorted(bag.dag_ids), "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                  "heavy_imported": sorted(m for m in ("casatools", "casatasks", "numpy", "scipy")
                                           if m in sys.modules)}))
"""


def parse_once(path: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env,
                         cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"parsing {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    env = dict(os.environ)
    env["AIRFLOW_HOME"] = str(HERE / ".work" / "airflow-parse")  # never the user's Airflow
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    m, l0 = machine(), load()
    rows = []
    for f in files:
        runs = [parse_once(f, env) for _ in range(a.repeats)]
        rows.append({"file": str(f.relative_to(ROOT)), "dags": runs[0]["dags"], "errors": runs[0]["errors"],
                     "heavy_imported": runs[0]["heavy_imported"], "runs": runs,
                     **{k: median(r[k] for r in runs) for k in ("import_airflow_s", "dagbag_wall_s",
                                                                 "airflow_reported_s")}})
    l1 = load()
    result = {"benchmark": "dag_parse", "when": now(), "machine": m, "load_before": l0, "load_after": l1,
              "repeats": a.repeats, "rows": rows}
    print(header(f"DAG parse time per file, medians of {a.repeats} fresh processes", m, l0, l1))
    print(table(("file", "dags", "parse s (Airflow)", "DagBag wall s", "import airflow s", "heavy imports"),
                [(r["file"], ",".join(r["dags"]) or "-", f"{r['airflow_reported_s']:.3f}",
                  f"{r['dagbag_wall_s']:.3f}", f"{r['import_airflow_s']:.2f}",
                  ",".join(r["heavy_imported"]) or "none") for r in rows]))
    for r in rows:
        if r["errors"]:
            print(f"import errors in {r['file']}: {r['errors']}")
    print(f"wrote {write_result('dag_parse', result)}")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
