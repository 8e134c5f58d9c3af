"""Shared helpers of the benchmarks: the machine, its load, medians, fits, the JSON result."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
WORK = HERE / ".work"


def machine() -> dict:
    """Cores, memory and CPU of this machine (reported with every table)."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu, "python": platform.python_version(), "host": platform.node()}


def load() -> dict:
    """The 1/5/15-minute load averages now (the machine may be shared: say how busy it was)."""
    a, b, c = os.getloadavg()
    return {"at": now(), "load1": round(a, 2), "load5": round(b, 2), "load15": round(c, 2)}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fit_exponent(x, y) -> float:
    """Slope of log y against log x: y ~ x^slope."""
    import numpy as np

    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def header(title: str, m: dict, load_before: dict, load_after: dict | None = None) -> str:
    s = (f"{title}\nmachine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}; "
         f"load avg before {load_before['load1']}/{load_before['load5']}/{load_before['load15']}")
    if load_after:
        s += f", after {load_after['load1']}/{load_after['load5']}/{load_after['load15']}"
    return s


def write_result(name: str, result: dict) -> Path:
    """Writes bench/results/<name>.json atomically (a half-written result never looks complete)."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(out)
    return out


def table(head: tuple, rows: list[tuple]) -> str:
    cells = [tuple(str(c) for c in head)] + [tuple(str(c) for c in r) for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)
