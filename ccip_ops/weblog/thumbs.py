"""Thumbnails of the pbcor cutouts (spec §7 'Weblog plots'): one PNG per plane and Stokes, with sky
axes (astropy WCSAxes), NRAO's colour range −5 to +20 × the plane's median rms under an asinh
stretch (``astropy.visualization``), a colour bar, the restoring beam (lower left) and the
clean-mask contours (iter2 clean mask in cyan, iter3 pb mask in white: the peak-search masks).
Images and masks are read decimated (at most :data:`THUMB_MAX_PX` a side), never whole."""
from __future__ import annotations

import math

import numpy as np

from .. import casaimage, naming
from ..runtree import RunTree


def celestial_wcs(path):
    """The astropy WCS of a CASA image's direction axes (its x, y pixel grid)."""
    from astropy.wcs import WCS

    with casaimage.opened(path) as ia:
        cs = ia.coordsys()
        try:
            refpix = cs.referencepixel()["numeric"][:2]
            refval = cs.referencevalue(format="n")["numeric"][:2]
            inc = cs.increment(format="n")["numeric"][:2]
            proj = cs.projection()["type"]
        finally:
            cs.done()
    w = WCS(naxis=2)
    w.wcs.ctype = [f"RA---{proj}", f"DEC--{proj}"]
    w.wcs.crpix = [refpix[0] + 1, refpix[1] + 1]
    w.wcs.crval = [math.degrees(refval[0]) % 360, math.degrees(refval[1])]
    w.wcs.cdelt = [math.degrees(inc[0]), math.degrees(inc[1])]
    return w


THUMB_MAX_PX = 512  # a thumbnail is ~250 px wide: reading more of a 6200² cutout only costs memory


def step(shape, max_px: int = THUMB_MAX_PX) -> int:
    """Every n-th pixel along x and y, n such that neither side read exceeds ``max_px``."""
    return max(1, -(-max(shape[0], shape[1]) // max_px))


def decimated(path, n: int, blc=None, trc=None) -> np.ndarray:
    """The image's pixels (of the box blc..trc) read every n-th pixel along x and y
    (``getchunk(inc=...)``): a thumbnail of a VLASS cutout holds ~1 MB, not 600 MB."""
    with casaimage.opened(path) as ia:
        kw = {"blc": list(blc), "trc": list(trc)} if blc is not None else {}
        return ia.getchunk(inc=[n, n] + [1] * (len(ia.shape()) - 2), **kw)


def _mask(tree: RunTree, r, kind: str, iteration: int, shape, n: int) -> np.ndarray | None:
    """The mask's first plane inside the cutout box, read decimated like the thumbnail."""
    p = tree.working / r.target.names.name(kind, iteration)
    if not p.exists():
        return None
    box = r.qa.get("cutout_box")
    m = decimated(p, n, [box[0], box[1], 0, 0], [box[2], box[3], 0, 0]) if box else decimated(p, n)
    m = m[:, :, 0, 0]
    return m if m.shape == tuple(shape) else None


def thumbnails(tree: RunTree, results) -> dict[str, list[str]]:
    """{label: [I, Q, U, V thumbnail paths relative to html/]}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize
    from matplotlib.patches import Ellipse

    out: dict[str, list[str]] = {}
    (tree.html / "thumbs").mkdir(parents=True, exist_ok=True)
    for r in results:
        if r.status != "ok" or "image_pbcor_subim" not in r.images:
            continue
        path = tree.abs(r.images["image_pbcor_subim"])
        with casaimage.opened(path) as ia:
            n = step(ia.shape())
        a = decimated(path, n)
        wcs = celestial_wcs(path)[::n, ::n]  # the grid of the pixels read
        cell = abs(wcs.wcs.cdelt[0]) * 3600
        masks = [(_mask(tree, r, "cleanmask", 2, a.shape[:2], n), "cyan"),
                 (_mask(tree, r, "mask", 3, a.shape[:2], n), "white")]
        rms_stats = (r.qa.get("stats") or {}).get("rms") or {}
        names = []
        for k, s in enumerate("IQUV"):
            rms = (rms_stats.get(s) or {}).get("median") or r.qa.get("VLASSRMS") or float(np.nanstd(a[:, :, k, 0]))
            fig = plt.figure(figsize=(3.4, 3.0))
            ax = fig.add_subplot(projection=wcs)
            im = ax.imshow(a[:, :, k, 0].T * 1e3, origin="lower", cmap="inferno",
                           norm=ImageNormalize(vmin=-5e3 * rms, vmax=20e3 * rms, stretch=AsinhStretch(0.1)))
            for m, colour in masks:
                if m is not None and (m > 0.5).any() and not (m > 0.5).all():
                    ax.contour(m.T, levels=[0.5], colors=colour, linewidths=0.6)
            if r.beam and r.beam.bmaj:
                nx, ny = a.shape[:2]
                bx, by = 0.08 * nx + r.beam.bmaj / cell / 2, 0.08 * ny + r.beam.bmaj / cell / 2
                ax.add_patch(Ellipse((bx, by), r.beam.bmin / cell, r.beam.bmaj / cell, angle=r.beam.pa,
                                     edgecolor="white", facecolor="none", lw=0.8))
            ax.coords[0].set_axislabel("RA", fontsize=6)
            ax.coords[1].set_axislabel("Dec", fontsize=6)
            for c in ax.coords:
                c.set_ticklabel(size=5)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            cb.set_label("mJy/beam", fontsize=6)
            cb.ax.tick_params(labelsize=5)
            ax.set_title(f"{r.label} {s}  (−5…20 × rms {1e3 * rms:.2g} mJy)", fontsize=6)
            name = naming.thumbnail(r.label, s)
            fig.savefig(tree.html / name, dpi=100, bbox_inches="tight")
            plt.close(fig)
            names.append(name)
        out[r.label] = names
    return out
