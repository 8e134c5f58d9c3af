"""hif_transformimagedata (stage 3): ``mstransform`` of the PIMS to ``<name>_split.ms``.

Selects the TARGET fields of the SE target (the box of ±(1800″ + buffer) around its phase centre)
and its spws (default 2-17), ``datacolumn='data'``, ``reindex=False`` (spw ids keep their
numbers), POINTING kept; then ``initweights(wtmode='nyq')``. A retry deletes a stale output
first; the output is written under a temporary name and renamed when complete.
Entry point: :func:`split_pims`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .. import naming
from ..exceptions import InputError
from ..heuristics import fields as fieldsel
from ..model import SeipTarget
from ..runtree import RunTree, remove
from ._casa import Casa

log = logging.getLogger("ccip")


def split_pims(tree: RunTree, pims_rel: str, seip: SeipTarget) -> str:
    """The transformed MS, relative to the run tree."""
    casa = Casa(tree.working, "transform")
    pims = tree.abs(pims_rel)
    out = tree.working / naming.split_vis(naming.ms_root(Path(pims_rel).name))
    tmp = out.with_name(out.name + ".partial")
    for p in (out, tmp, Path(naming.flagversions(str(out))), Path(naming.flagversions(str(tmp)))):
        remove(p)
    half = fieldsel.CUTOUT_HALF_ARCSEC + seip.search_radius_arcsec
    selection = fieldsel.select_fields(str(pims), seip.phasecenter, half)  # TARGET fields only (§3.3)
    for note in selection.notes:
        log.warning("%s: %s", pims.name, note)
    ids = selection.ids
    if not ids:  # field='' would select every field
        raise InputError(f"no TARGET field of {pims.name} with a VLASS name lies within {half:.0f} arcsec of "
                         f"SEIP phasecenter {seip.phasecenter!r}" + "".join(f"; {n}" for n in selection.notes))
    casa("mstransform", vis=str(pims), outputvis=str(tmp), field=",".join(map(str, ids)),
         spw=seip.spw, datacolumn="data", reindex=False, keepflags=True)
    casa("initweights", vis=str(tmp), wtmode="nyq")
    tmp.rename(out)
    return tree.rel(out)
