"""Synthetic imaging products of one spw group, as ``makeimages`` leaves them, without tclean.

For the fan-in at VLASS size (``bench/vlass_scale.py``) and its tests: ``T.iter3`` image, residual,
psf, pb, model, sumwt, weight and mask, and ``T.iter2.cleanmask`` (IQUV, one channel; written in
row blocks, so a 12500² group is written with ~100 MB of memory), a restoring beam on every restored
plane, the VLASS miscinfo keywords, and the group's result JSON. Sky: Gaussian noise plus point
sources (polarised, one spectral index) convolved with the beam, times a Gaussian primary beam.
``light=True`` leaves out model and weight (never read after imaging) to save disk.
``pixels_from=<an earlier group's result>`` gives this group that group's pixels without a second
copy on disk (its images' pixel files hard-linked, its own coordinates, beams and keywords written):
three 12500² groups then need ~50 GB instead of ~80 GB. The stages read and write each group as
they would any other; only the pixel values (and so the analysis's numbers) repeat.
"""
from __future__ import annotations

import math
import os
import shutil

import numpy as np

from .. import casa_env, casaimage, naming
from ..heuristics import imaging as H
from ..model import Beam, ImagingResult, ImagingTarget
from ..runtree import RunTree, remove, write_json

IMG = "VLASS2.1.ql.T10t02.J005000-023000.10.2048.v1"
BLOCK_PIXELS = 3_000_000  # pixels of one plane written at once


def target(tree: RunTree, k: int, n: int, cell_arcsec: float) -> ImagingTarget:
    spws = (2 + 2 * k, 3 + 2 * k)
    label = naming.group_label(",".join(map(str, spws)))
    f = 2.0e9 + 0.128e9 * (2 * k + 1.5)
    return ImagingTarget(group=",".join(map(str, spws)), spws=spws, label=label,
                         imagename=f"{naming.stage_prefix(naming.CCIP_IMAGING_STAGE)}{IMG}.{label}",
                         reffreq_hz=f, reffreq=f"{f / 1e9!r}GHz", imsize=(n, n), cell=f"{cell_arcsec}arcsec",
                         phasecenter="J2000 00:50:00.0 -02.30.00.0", field_ids=(0,), vis="working/none.ms",
                         masks=("m1", "m2", "pb"), flagpct=0.0)


def _csys(n: int, cell_arcsec: float, freq_hz: float):
    cs = casa_env.tools().coordsys()
    cs = cs.newcoordsys(direction=True, spectral=True, stokes=["I", "Q", "U", "V"])
    cs.setunits(["rad", "rad", "", "Hz"])  # as tclean's images: the stages read direction values in rad
    cs.setreferencepixel([n / 2, n / 2, 0, 0])
    cs.setreferencevalue(type="direction", value=[math.radians(12.5), math.radians(-2.5)])
    cs.setincrement(type="direction", value=[-math.radians(cell_arcsec / 3600), math.radians(cell_arcsec / 3600)])
    cs.setreferencevalue(type="spectral", value=[freq_hz])
    cs.setincrement(type="spectral", value=[256e6])
    cs.setrestfrequency(freq_hz)
    return cs


def _write(path, n: int, csys, rows_fn) -> None:
    """A 4-Stokes image written in row blocks; rows_fn(y0, y1) -> (n, y1 - y0, 4, 1) float32."""
    ia = casa_env.tools().image()
    ia.fromshape(str(path), shape=[n, n, 4, 1], csys=csys.torecord(), overwrite=True)
    try:
        step = max(1, BLOCK_PIXELS // n)
        for y0 in range(0, n, step):
            y1 = min(n, y0 + step)
            ia.putchunk(np.ascontiguousarray(rows_fn(y0, y1), dtype="f4"), blc=[0, y0, 0, 0])
    finally:
        ia.done()


def _linked_copy(src, dst, csys) -> None:
    """Image ``src`` as ``dst`` with the same pixel files (hard links of the tiled storage managers'
    ``*_TSM*`` data files, the table's other files copied), then ``dst``'s own coordinates."""
    remove(dst)

    def link_data(s, d):
        return os.link(s, d) if "_TSM" in os.path.basename(s) else shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_data)
    with casaimage.opened(dst) as ia:
        ia.setcoordsys(csys.torecord())


def write_group(tree: RunTree, k: int, n: int, cell_arcsec: float = 0.6, beam_arcsec: float = 2.5,
                noise: float = 1.2e-4, nsources: int = 20, seed: int = 0, light: bool = False,
                pixels_from: ImagingResult | None = None) -> ImagingResult:
    t = target(tree, k, n, cell_arcsec)
    w, names = tree.working, t.names
    w.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000 * k)
    scale = (t.reffreq_hz / 3e9)
    bmaj, bmin = beam_arcsec * 3e9 / t.reffreq_hz, 0.8 * beam_arcsec * 3e9 / t.reffreq_hz
    src = np.random.default_rng(seed).uniform(0.3 * n, 0.7 * n, (nsources, 2))
    flux = np.random.default_rng(seed + 1).uniform(2e-3, 2e-2, nsources) * scale ** -0.7
    pol = np.array([1.0, 0.1, 0.05, 0.0])
    fw = 2 * math.sqrt(2 * math.log(2))
    sx, sy = bmaj / fw / cell_arcsec, bmin / fw / cell_arcsec
    pb_sigma = (n / 2.2) / fw * (3e9 / t.reffreq_hz)
    x = np.arange(n, dtype="f8")[:, None]

    def pb(y0, y1):
        y = np.arange(y0, y1, dtype="f8")[None, :]
        p = np.exp(-0.5 * ((x - n / 2) ** 2 + (y - n / 2) ** 2) / pb_sigma ** 2).astype("f4")
        return np.broadcast_to(p[:, :, None, None], (n, y1 - y0, 4, 1))

    def sky(y0, y1):
        s = np.zeros((n, y1 - y0), "f8")
        for (sxp, syp), f in zip(src, flux):  # each source only within 6 sigma of it
            xa, xb = max(int(sxp - 6 * sx), 0), min(int(sxp + 6 * sx) + 2, n)
            ya, yb = max(int(syp - 6 * sy), y0), min(int(syp + 6 * sy) + 2, y1)
            if xa < xb and ya < yb:
                gx, gy = np.arange(xa, xb)[:, None], np.arange(ya, yb)[None, :]
                s[xa:xb, ya - y0:yb - y0] += f * np.exp(-0.5 * ((gx - sxp) ** 2 / sx ** 2 + (gy - syp) ** 2 / sy ** 2))
        return s[:, :, None, None] * pol[None, None, :, None]

    def residual(y0, y1):
        return rng.standard_normal((n, y1 - y0, 4, 1), dtype=np.float32) * np.float32(noise) * pb(y0, y1)

    def image(y0, y1):
        p = pb(y0, y1)
        return (rng.standard_normal((n, y1 - y0, 4, 1), dtype=np.float32) * np.float32(noise) + sky(y0, y1)) * p

    def psf(y0, y1):
        y = np.arange(y0, y1, dtype="f8")[None, :]
        p = np.exp(-0.5 * ((x - n / 2) ** 2 / sx ** 2 + (y - n / 2) ** 2 / sy ** 2))
        return np.repeat(p[:, :, None, None], 4, axis=2)

    def mask(y0, y1):
        return (pb(y0, y1) > 0.4).astype("f4")  # the mask that pbmask=0.4 gives

    def zeros(y0, y1):
        return np.zeros((n, y1 - y0, 4, 1), "f4")

    cs = _csys(n, cell_arcsec, t.reffreq_hz)
    kinds = {"image": image, "residual": residual, "psf": psf, "pb": pb, "mask": mask}
    if not light:
        kinds.update(model=zeros, weight=pb)
    images = [((kind,), fn) for kind, fn in kinds.items()] + [(("cleanmask", 2), mask)]
    for key, fn in images:
        if pixels_from is not None:
            _linked_copy(w / pixels_from.target.names.name(*key), w / names.name(*key), cs)
        else:
            _write(w / names.name(*key), n, cs, fn)
    ia = casa_env.tools().image()
    ia.fromshape(str(w / names.name("sumwt")), shape=[1, 1, 4, 1], csys=cs.torecord(), overwrite=True)
    ia.done()
    cs.done()
    for kind in ("image", "residual", "psf"):
        with casaimage.opened(w / names.name(kind)) as im:
            im.setrestoringbeam(major=f"{bmaj}arcsec", minor=f"{bmin}arcsec", pa="0deg")
    kw = H.vlass_keywords(t, 256e6)
    for p in w.glob(names.iteration_root(3) + ".*"):
        casaimage.update_miscinfo(p, **kw, VLASSITY=H.image_type(p.name))
    images = {kind: tree.rel(w / names.name(kind))
              for kind in ("image", "residual", "psf", "pb", "model", "sumwt", "weight", "mask")
              if (w / names.name(kind)).exists()}
    result = ImagingResult(target=t, status="ok", images=images, beam=Beam(bmaj, bmin, 0.0),
                           qa={"VLASSBW": 256e6, "VLASSBWN": 256e6, "masks": [], "synthetic": True})
    tree.results.mkdir(parents=True, exist_ok=True)
    write_json(tree.result_json(t.label), result.to_json())
    return result
