"""Plane rejection after imaging (PIPE-1800, spec §4.3 'Image metadata and plane rejection').

Reference plane = element ⌊n/2⌋ of argsort(bmin·ν); expected beam b_exp(ν) = b_ref ν_ref/ν
(major and minor separately). A plane is kept if both axes lie in (b_exp(1-δ), b_exp(1+δ))
and its flagged fraction is below ``flagpct_thresh``, or if its group overlaps
``exclude_spw``, or if ``apply`` is False.
"""
from __future__ import annotations

import numpy as np

PLANE_REJECT_IM = {"apply": True, "exclude_spw": "", "flagpct_thresh": 0.8, "beamdev_thresh": 0.2}


def keep_flags(planes: list[dict], settings: dict | None = None) -> list[dict]:
    """planes: [{'group', 'spws', 'freq', 'bmaj', 'bmin', 'flagpct'}] -> each with 'keep' and 'why'."""
    s = {**PLANE_REJECT_IM, **(settings or {})}
    if not planes:
        return []
    freq = np.array([p["freq"] for p in planes], dtype=float)
    bmaj = np.array([p["bmaj"] for p in planes], dtype=float)
    bmin = np.array([p["bmin"] for p in planes], dtype=float)
    ref = int(np.argsort(bmin * freq)[len(planes) // 2])
    d = float(s["beamdev_thresh"])
    exclude = {int(x) for x in str(s["exclude_spw"]).split(",") if x.strip().isdigit()}
    out = []
    for k, p in enumerate(planes):
        emaj = bmaj[ref] * freq[ref] / freq[k]
        emin = bmin[ref] * freq[ref] / freq[k]
        beam_ok = emaj * (1 - d) < bmaj[k] < emaj * (1 + d) and emin * (1 - d) < bmin[k] < emin * (1 + d)
        flag_ok = p["flagpct"] < s["flagpct_thresh"]
        keep = (beam_ok and flag_ok) or bool(set(p["spws"]) & exclude) or not s["apply"]
        why = [] if keep else ([] if beam_ok else ["beam deviation"]) + ([] if flag_ok else ["flagged fraction"])
        out.append({**p, "keep": bool(keep), "why": why, "expected_bmaj": emaj, "expected_bmin": emin,
                    "reference": k == ref})
    return out
