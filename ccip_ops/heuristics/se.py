"""VLASS-SE-CONT settings, in one place: the simulator runs them to make the SE products and
hifv_restorepims re-runs them to reproduce the SE state bit for bit, so they must agree.

- stage-1 imaging heuristics (vlass_stage = 1, spec §1 stage 2), used for the selfcal model;
- ``hifv_statwt(statwtmode='VLASS-SE')`` (spec §2.4 step 5);
- ``hifv_selfcal(selfcalmode='VLASS-SE')`` applycal (spec §2.4 step 6).
"""
from __future__ import annotations

STAGE1 = {
    "datacolumn": "data", "stokes": "I", "specmode": "mfs", "deconvolver": "mtmfs", "nterms": 2,
    "reffreq": "3.0GHz", "gridder": "mosaic", "weighting": "briggs", "robust": -2.0,
    "uvtaper": ["2.6476arcsec"], "uvrange": "<12km", "pblimit": 0.1, "mosweight": False, "conjbeams": False,
    "usepointing": False, "perchanweightdensity": False, "psfcutoff": 0.5, "parallel": False,
}

STATWT = {"datacolumn": "residual_data", "combine": "field,scan,state,corr", "timebin": "1yr", "chanbin": 1,
          "fitspw": "", "field": "", "spw": ""}


def stage1_tclean(vis: str, imagename: str, imsize: list[int], cell: str, phasecenter: str) -> dict:
    """tclean arguments of the SE stage-1 imaging of one field."""
    return {"vis": vis, "imagename": imagename, "imsize": list(imsize), "cell": cell,
            "phasecenter": phasecenter, **STAGE1}


def selfcal_applycal(vis: str, caltable: str, nspw_total: int, lowest_science_spw: int) -> dict:
    """applycal of the SE phase self-calibration table (combine='spw' solutions on the lowest spw)."""
    return {"vis": vis, "gaintable": [caltable], "interp": ["nearest"],
            "spwmap": [nspw_total * [lowest_science_spw]], "parang": False, "applymode": "calonly",
            "calwt": False, "flagbackup": False}
