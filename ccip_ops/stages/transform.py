"""hif_transformimagedata (stage 3): ``mstransform`` of the PIMS to ``<name>_split.ms``.

Selects the fields of the SE target (the box of ±(1800″ + buffer) around its phase centre)
and its spws (default 2-17), ``datacolumn='data'``, ``reindex=False`` (spw ids keep their
numbers), POINTING kept; then ``initweights(wtmode='nyq')``. A retry deletes a stale output
first; the output is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

from pathlib import Path

from ..heuristics import fields as fieldsel
from ..runtree import RunTree, remove
from ._casa import Casa


def run(tree: RunTree, pims_rel: str, seip_target: dict) -> str:
    casa = Casa(tree.working, "transform")
    pims = tree.abs(pims_rel)
    name = Path(pims_rel).name[: -len(".ms")]
    out = tree.working / f"{name}_split.ms"
    tmp = tree.working / f"{name}_split.ms.partial"
    for p in (out, tmp, Path(str(out) + ".flagversions"), Path(str(tmp) + ".flagversions")):
        remove(p)
    half = fieldsel.CUTOUT_HALF_ARCSEC + seip_target.get("search_radius_arcsec", fieldsel.DEFAULT_BUFFER_ARCSEC)
    ids = fieldsel.box_fields(str(pims), seip_target["phasecenter"], half)
    casa("mstransform", vis=str(pims), outputvis=str(tmp), field=",".join(map(str, ids)),
         spw=seip_target["spw"], datacolumn="data", reindex=False, keepflags=True)
    casa("initweights", vis=str(tmp), wtmode="nyq")
    tmp.rename(out)
    return tree.rel(out)
