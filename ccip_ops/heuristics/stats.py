"""Robust image statistics (numpy, no CASA): what the weblog and the Stokes analysis quote."""
from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian = 1.4826 x its median absolute deviation


def robust(a: np.ndarray) -> dict:
    """peak (largest |value|), MAD-rms, median, max, min, peak/MAD-rms of the finite values of ``a``."""
    a = np.asarray(a)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"peak": float("nan"), "madrms": float("nan"), "median": float("nan"), "max": float("nan")}
    med = float(np.median(a))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(a - med)))
    peak = float(a[np.argmax(np.abs(a))])
    return {"peak": peak, "madrms": mad, "median": med, "max": float(a.max()), "min": float(a.min()),
            "peak_over_madrms": abs(peak) / mad if mad > 0 else float("nan")}
