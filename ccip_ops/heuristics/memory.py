"""How much memory one spw group's tclean needs, from its image size (issue 14 item 4).

The model is the one measured in ``bench/results/imaging_scale.json`` (``extrapolation.linear_model
.peak_rss_mb``): peak RSS = m0 + b * pixels, m0 ~317 MiB (Python, CASA, the PSF fit) and b ~472
bytes per image pixel for Stokes IQUV, nterms 1 (tclean holds about a hundred float planes per
pixel: the image set per Stokes and Taylor term, the complex grids, padding). Other Stokes and
Taylor-term counts scale the per-pixel part by (number of Stokes x nterms) / 4. Fitted on
160-640 px images: the per-pixel part is what grows, so it is the part to trust at VLASS sizes
(a 16384-px group asks ~118 GiB). The MS is read from disk and not held, so visibilities do not
enter (the benchmark's memory exponent in visibilities is ~0.02).
"""
from __future__ import annotations

MIB = 2 ** 20
GIB = 2 ** 30
BASE_MIB = 317.21809895833354  # linear_model.peak_rss_mb.m0
BYTES_PER_PIXEL_IQUV = 472.29333333333335  # linear_model.bytes_per_pixel (IQUV, nterms 1)


def tclean_bytes(imsize: list[int] | tuple[int, int], stokes: str = "IQUV", nterms: int = 1) -> float:
    """Estimated peak memory (bytes) of one tclean of an ``imsize`` image."""
    nx, ny = (int(imsize[0]), int(imsize[-1]))
    nstokes = max(1, len(stokes or "I"))
    return BASE_MIB * MIB + BYTES_PER_PIXEL_IQUV * nx * ny * nstokes * max(1, int(nterms or 1)) / 4.0


def fits(imsize, limit_gib: float, stokes: str = "IQUV", nterms: int = 1) -> tuple[bool, float]:
    """(whether the estimate is within ``limit_gib``, the estimate in GiB)."""
    est = tclean_bytes(imsize, stokes, nterms) / GIB
    return est <= limit_gib, est
