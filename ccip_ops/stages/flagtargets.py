"""hifv_flagtargetsdata (stage 5): the template flags, with before/after summaries.

``flagdata`` in list mode with ``flagbackup=True``: a ``summary`` named ``before``, the
lines of ``<msroot>.flagtargetstemplate.txt`` when that file exists (a warning otherwise),
then a ``summary`` named ``template``. The commands are written to
``<msroot>.flagtargetscmds.txt``. Entry point: :func:`flag_targets`; the summaries are the
stage's data.
"""
from __future__ import annotations

import logging

from .. import naming
from ..runtree import RunTree, write_json
from ._casa import Casa

log = logging.getLogger("ccip")


def flag_targets(tree: RunTree, vis_rel: str) -> dict:
    """{summary name: {flagged, total}} of the ``before`` and ``template`` summaries."""
    casa = Casa(tree.working, "flagtargets")
    vis = tree.abs(vis_rel)
    template = tree.working / naming.flag_template(vis.name)
    cmds = ["mode='summary' name='before'"]
    if template.is_file():
        cmds += [ln.strip() for ln in template.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    else:
        log.warning("flag template %s does not exist: no template flags applied", template.name)
    cmds.append("mode='summary' name='template'")
    cmdfile = tree.working / naming.flag_commands(vis.name)
    cmdfile.write_text("\n".join(cmds) + "\n")
    summaries = casa("flagdata", vis=str(vis), mode="list", inpfile=str(cmdfile), flagbackup=True)
    out = {}
    for rep in (summaries or {}).values() if isinstance(summaries, dict) else []:
        if isinstance(rep, dict) and rep.get("name") in ("before", "template"):
            out[rep["name"]] = {"flagged": rep.get("flagged"), "total": rep.get("total")}
    write_json(tree.stage_data("flagtargets"), out)
    return out


def notes(summaries: dict) -> str:
    t = summaries.get("template") or {}
    return f"{100 * t['flagged'] / t['total']:.1f}% flagged after template" if t.get("total") else ""
