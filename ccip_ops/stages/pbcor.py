"""hifv_pbcor (stage 8, spec §5, §4.3): primary-beam correction, then plane rejection.

:func:`pbcor_group`: ``impbcor(mode='divide', cutoff=-1.0, stretch=False)`` of
``T.iter3.image.tt0`` and ``T.iter3.residual.tt0`` by ``T.iter3.pb.tt0``, giving
``T.iter3.image.pbcor.tt0`` and ``T.iter3.image.residual.pbcor.tt0``; outputs are rewritten on a
re-run.

:func:`reject_planes`: PIPE-1800 plane rejection over the groups that reached this stage
(flagged fraction, beam deviation: :mod:`ccip_ops.heuristics.planes`); every image of a group
gets ``VLASSRJ`` in its miscinfo. Rejected planes go on and are exported marked (DESIGN §4).
The verdicts are the stage's data.
"""
from __future__ import annotations

from dataclasses import replace

from .. import casaimage
from ..heuristics import planes as planesmod
from ..model import FanIn, ImagingResult, Plane
from ..runtree import RunTree, remove, write_json
from ._casa import Casa


def pbcor_group(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"pbcor.{result.label}")
    names, w = result.target.names, tree.working
    outs = {"image_pbcor": w / names.image_pbcor, "residual_pbcor": w / names.residual_pbcor}
    for kind, src in (("image_pbcor", names.name("image")), ("residual_pbcor", names.name("residual"))):
        remove(outs[kind])
        casa("impbcor", imagename=str(w / src), pbimage=str(w / names.name("pb")), outfile=str(outs[kind]),
             mode="divide", cutoff=-1.0, stretch=False)
    return result.adding({k: tree.rel(v) for k, v in outs.items()})


def reject_planes(tree: RunTree, fan: FanIn, settings: dict | None = None) -> FanIn:
    """The fan-in with each group's plane verdict; VLASSRJ written into every image of the group."""
    verdicts = planesmod.keep_flags(
        [{"group": r.group, "label": r.label, "spws": list(r.target.spws), "freq": r.target.reffreq_hz,
          "bmaj": r.beam.bmaj, "bmin": r.beam.bmin, "flagpct": r.target.flagpct} for r in fan.results], settings)
    planes = tuple(Plane.from_json(v) for v in verdicts)
    keep = {p.label: p.keep for p in planes}
    for r in fan.results:
        for p in tree.working.glob(r.target.names.iteration_root(len(r.target.masks)) + ".*"):
            casaimage.update_miscinfo(p, VLASSRJ=not keep[r.label])
    write_json(tree.stage_data("pbcor"), {"planes": [p.to_json() for p in planes]})
    return replace(fan, planes=planes)


def notes(fan: FanIn) -> str:
    rejected = [p.group for p in fan.planes if not p.keep]
    return (f"{len(fan.results)} groups" + (f", {len(fan.failed)} failed" if fan.failed else "")
            + (f"; rejected planes: {', '.join(rejected)}" if rejected else ""))
