#!/usr/bin/env python3
"""Wall time and peak memory of the aw-projection restore (issue 14, the note's figures).

Runs stage_inputs, editimlist (SEIP) and transform of a simulated awproject-mode field, then
``pipeline.restorepims`` timed, in this (fresh) process; prints the restore's wall time, the
process's max RSS and each CASA call's wall time and peak RSS. Run it under ``/usr/bin/time -v``
for the CPU time. Simulate the field first: ``ccip simulate --archive ARCHIVE --preset awp``.

    /usr/bin/time -v python bench/restore_awp.py ARCHIVE WORKDIR [FIELD_ID]
"""
from __future__ import annotations

import json
import resource
import sys
import time

from ccip_ops import pipeline
from ccip_ops.simulate import DEFAULT_FIELD_ID


def main(argv: list[str]) -> int:
    arch, work = argv[0], argv[1]
    field = argv[2] if len(argv) > 2 else DEFAULT_FIELD_ID
    ctx = pipeline.stage_inputs({"field_id": field}, time.strftime("restore_awp__%Y%m%dT%H%M%S"), arch, work)
    for step in (pipeline.editimlist_seip, pipeline.transform):
        ctx = step(ctx)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.time()
    ctx = pipeline.restorepims(ctx)
    wall = time.time() - t0
    data = json.loads(ctx.tree.stage_data("restorepims").read_text())
    print(json.dumps({"restorepims_wall_s": round(wall, 1), "maxrss_before_mb": round(rss0, 1),
                      "maxrss_after_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "gridder": data.get("gridder"), "cfcache": data.get("cfcache"),
                      "calls": [(c["task"], c["wall_s"], c["peak_rss_mb"]) for c in data["casa_calls"]]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
