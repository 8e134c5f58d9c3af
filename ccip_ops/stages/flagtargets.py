"""hifv_flagtargetsdata (stage 5): the template flags, with before/after summaries.

``flagdata`` in list mode with ``flagbackup=True``: a ``summary`` named ``before``, the
lines of ``<msroot>.flagtargetstemplate.txt`` when that file exists (a warning otherwise),
then a ``summary`` named ``template``. The commands are written to
``<msroot>.flagtargetscmds.txt``.
"""
from __future__ import annotations

import json
import logging

from ..runtree import RunTree
from ._casa import Casa

log = logging.getLogger("ccip")


def run(tree: RunTree, vis_rel: str) -> dict:
    casa = Casa(tree.working, "flagtargets")
    vis = tree.abs(vis_rel)
    root = str(vis)[: -len(".ms")]
    template = tree.working / (vis.name[: -len(".ms")] + ".flagtargetstemplate.txt")
    cmds = ["mode='summary' name='before'"]
    if template.is_file():
        cmds += [ln.strip() for ln in template.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    else:
        log.warning("flag template %s does not exist: no template flags applied", template.name)
    cmds.append("mode='summary' name='template'")
    cmdfile = f"{root}.flagtargetscmds.txt"
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    summaries = casa("flagdata", vis=str(vis), mode="list", inpfile=cmdfile, flagbackup=True)
    out = {}
    for rep in (summaries or {}).values() if isinstance(summaries, dict) else []:
        if isinstance(rep, dict) and rep.get("name") in ("before", "template"):
            out[rep["name"]] = {"flagged": rep.get("flagged"), "total": rep.get("total")}
    (tree.working / "flagtargets_summary.json").write_text(json.dumps(out, indent=1))
    return out
