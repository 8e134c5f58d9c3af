"""Image statistics: robust numbers (numpy, no CASA) and the rms-box rule of stage 9.

- :func:`robust`: what the weblog and the Stokes analysis quote, from an array;
- :func:`from_casa`: the same numbers from ``ia.statistics(robust=True)``, one plane at a time,
  so that a stage never holds a whole image to quote them;
- :func:`rms_box_arcsec` and :func:`rms_region`: the imdev box and where imdev has to run so
  that its values inside the cutout equal a whole-image imdev's.
"""
from __future__ import annotations

import math

import numpy as np

MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian = 1.4826 x its median absolute deviation
NRAO_RMS_BOX_ARCSEC = 60.0  # hif_makermsimages: xlength = ylength = 60 arcsec
VLASS_MAX_CELL_ARCSEC = 1.0  # a cell this fine is a VLASS image (0.6"): NRAO's box, as NRAO
VLASS_MAX_BEAM_ARCSEC = 3.75  # 60" / 16 beams of the coarsest VLASS (B configuration) beam


def _empty() -> dict:
    return {"peak": float("nan"), "madrms": float("nan"), "median": float("nan"), "max": float("nan")}


def _summary(med: float, mad: float, mx: float, mn: float) -> dict:
    mad = MAD_TO_SIGMA * mad
    peak = mx if abs(mx) >= abs(mn) else mn
    return {"peak": peak, "madrms": mad, "median": med, "max": mx, "min": mn,
            "peak_over_madrms": abs(peak) / mad if mad > 0 else float("nan")}


def robust(a: np.ndarray) -> dict:
    """peak (largest |value|), MAD-rms, median, max, min, peak/MAD-rms of the finite values of ``a``."""
    a = np.asarray(a)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return _empty()
    med = float(np.median(a))
    out = _summary(med, float(np.median(np.abs(a - med))), float(a.max()), float(a.min()))
    out["peak"] = float(a[np.argmax(np.abs(a))])  # the first of equal |max| and |min|, as before
    return out


def from_casa(rec: dict, k: int) -> dict:
    """:func:`robust`'s numbers for plane ``k`` of an ``ia.statistics(robust=True)`` record."""
    if not len(rec.get("npts", [])) or float(np.atleast_1d(rec["npts"])[k]) == 0:
        return _empty()
    g = {key: float(np.atleast_1d(rec[key])[k]) for key in ("median", "medabsdevmed", "max", "min")}
    return _summary(g["median"], g["medabsdevmed"], g["max"], g["min"])


def rms_box_arcsec(cell_arcsec: float, bmaj_arcsec: float) -> float:
    """The side of stage 9's imdev box: NRAO's 60" whenever the cell is VLASS-like (<= 1"); for the
    coarse test fields, 60" x bmaj / 3.75" (never less than 60"), so that the box still spans the 16
    beams it spans at VLASS resolution (a 60" box holds ~2 beams of a 30" beam: its MAD reads low)."""
    if cell_arcsec <= VLASS_MAX_CELL_ARCSEC:
        return NRAO_RMS_BOX_ARCSEC
    return NRAO_RMS_BOX_ARCSEC * max(1.0, bmaj_arcsec / VLASS_MAX_BEAM_ARCSEC)


def rms_margin_px(box_arcsec: float, cell_arcsec: float, grid_px: int) -> int:
    """Pixels imdev needs around the cutout: one box, and at least the half box plus the two grid
    cells that cubic interpolation between grid points reaches (values there equal a whole-image run's)."""
    box_px = box_arcsec / cell_arcsec
    return int(math.ceil(max(box_px, box_px / 2 + 2 * grid_px + 1)))


def rms_region(cutout: tuple[int, int, int, int] | None, nx: int, ny: int, margin_px: int
               ) -> tuple[int, int, int, int] | None:
    """(blcx, blcy, trcx, trcy) over which imdev runs: the cutout and ``margin_px`` around it inside the
    image; None (the whole image) when there is no cutout or the margin reaches every edge."""
    if cutout is None:
        return None
    b = tuple(int(v) for v in (max(cutout[0] - margin_px, 0), max(cutout[1] - margin_px, 0),
                               min(cutout[2] + margin_px, nx - 1), min(cutout[3] + margin_px, ny - 1)))
    return None if b == (0, 0, nx - 1, ny - 1) else b
