"""The QA scores of each stage, from what the stage left (its data, the fan-in): one function per
stage, the rules in :mod:`ccip_ops.heuristics.qa`. The pipeline records them in
``working/stages.json`` (``qa`` and ``qa_scores``); the weblog shows them on each page.

The mapped imaging step (stage 7) has no record of its own: its scores are computed at the
fan-in, where the failed targets and the plane verdicts are known (:func:`makeimages`).
"""
from __future__ import annotations

from ..heuristics import qa
from ..model import FanIn
from ..runtree import RunTree, read_json

IMAGING_STEP = "image_spw_group"


def flagtargets(summaries: dict) -> list[dict]:
    """NRAO's flagging score of the fraction the template flagged (template − before)."""
    b, t = summaries.get("before") or {}, summaries.get("template") or {}
    if not t.get("total"):
        return [qa.score(0.0, "flag_summary", "No flag summary statistics")]
    frac = (float(t["flagged"]) - float(b.get("flagged") or 0.0)) / float(t["total"])
    return [qa.flagging_score(frac, "the data (newly, by the template)")]


def editimlist(tree: RunTree) -> list[dict]:
    tg = read_json(tree.targets_json, {})
    return qa.box_flag_scores({t["group"]: t["flagpct"] for t in tg.get("targets", [])},
                              tg.get("skipped_flagged", []), tg.get("rejected_nfield", []))


def makeimages(fan: FanIn) -> list[dict]:
    """Failed targets 0.34 each, imaged 1.0, and kept/imaged planes (NRAO's hif_makeimages)."""
    failed = {f.label for f in fan.failed if f.stage == IMAGING_STEP}
    return qa.makeimages_scores([t.label for t in fan.targets], sorted(failed),
                                [p.to_json() for p in fan.planes])


def pbcor(fan: FanIn) -> list[dict]:
    """The groups still going, and the planes rejected here (with why)."""
    out = [qa.score(len(fan.results) / max(len(fan.results) + len(fan.failed), 1), "groups",
                    f"{len(fan.results)} of {len(fan.results) + len(fan.failed)} spw groups corrected")]
    for p in fan.planes:
        if not p.keep:
            out.append(qa.score(None, "plane_rejected", f"plane rejected: {', '.join(p.why)}", p.group))
    if fan.planes:
        n = len(fan.planes)
        k = sum(1 for p in fan.planes if p.keep)
        out.append(qa.score(k / n, "plane_rejection", f"{n - k} of {n} imaged planes are rejected."))
    return out


def noise_ratios(fan: FanIn) -> dict[str, float | None]:
    """Per group: Stokes-V MAD-rms of the (flat-noise) cutout / expected thermal noise."""
    out = {}
    for r in fan.results:
        exp = r.qa.get("thermal_sigma_jy")
        v = ((r.qa.get("stats") or {}).get("image") or {}).get("V", {}).get("madrms")
        out[r.group] = v / exp if exp and v and v == v else None
    return out


def cutouts(fan: FanIn) -> list[dict]:
    return qa.rms_scores(noise_ratios(fan))
