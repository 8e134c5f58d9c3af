"""hifv_pbcor (stage 8, spec §5): primary-beam correction of each group's iter3 image and residual.

``impbcor(mode='divide', cutoff=-1.0, stretch=False)`` of ``T.iter3.image.tt0`` and
``T.iter3.residual.tt0`` by ``T.iter3.pb.tt0``, giving ``T.iter3.image.pbcor.tt0`` and
``T.iter3.image.residual.pbcor.tt0``. Outputs are rewritten on a re-run.
"""
from __future__ import annotations

from ..model import ImagingResult
from ..runtree import RunTree, remove
from ._casa import Casa


def run(tree: RunTree, result: ImagingResult) -> ImagingResult:
    casa = Casa(tree.working, f"pbcor.{result.target.label}")
    img = tree.abs(result.images["image"])
    base = str(img)[: -len(".image.tt0")]
    outs = {"image_pbcor": f"{base}.image.pbcor.tt0", "residual_pbcor": f"{base}.image.residual.pbcor.tt0"}
    for kind, src in (("image_pbcor", f"{base}.image.tt0"), ("residual_pbcor", f"{base}.residual.tt0")):
        remove(outs[kind])
        casa("impbcor", imagename=src, pbimage=f"{base}.pb.tt0", outfile=outs[kind], mode="divide",
             cutoff=-1.0, stretch=False)
    result.images.update({k: tree.rel(v) for k, v in outs.items()})
    return result
