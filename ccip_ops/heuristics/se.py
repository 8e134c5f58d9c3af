"""VLASS-SE-CONT settings, in one place: the simulator runs them to make the SE products and
hifv_restorepims re-runs them to reproduce the SE state bit for bit, so they must agree.

- the SEIP imaging modes (NRAO ``imageparams_factory``): which gridder and heuristics each
  ``imaging_mode`` of ``SEIP_parameter.list`` images with, and whether this pipeline can restore
  it (:func:`seip_mode`, refused by its gridder, not by its name);
- stage-1 imaging heuristics (vlass_stage = 1, spec §1 stage 2, §4.2), used for the selfcal model:
  :func:`stage1_tclean` (mosaic) and the aw-projection additions of the awproject modes
  (wprojplanes 32 or 1, conjbeams, usepointing, pblimit 0.02, rotatepastep 5, wbawp, 16384 px);
- ``hifv_statwt(statwtmode='VLASS-SE')`` (spec §2.4 step 5);
- ``hifv_selfcal(selfcalmode='VLASS-SE')`` applycal (spec §2.4 step 6).
"""
from __future__ import annotations

from dataclasses import dataclass

STAGE1 = {
    "datacolumn": "data", "stokes": "I", "specmode": "mfs", "deconvolver": "mtmfs", "nterms": 2,
    "reffreq": "3.0GHz", "gridder": "mosaic", "weighting": "briggs", "robust": -2.0,
    "uvtaper": ["2.6476arcsec"], "uvrange": "<12km", "pblimit": 0.1, "mosweight": False, "conjbeams": False,
    "usepointing": False, "perchanweightdensity": False, "psfcutoff": 0.5, "parallel": False,
}

# ImageParamsHeuristicsVlassSeCont (awproject): what differs from the mosaic stage-1 settings.
# psterm/aterm/computepastep are tclean's defaults, which NRAO does not set; written out so the
# casa_commands.log says what the CF cache was made with. psfcutoff: SE-CONT leaves CASA's 0.35.
AWPROJECT = {
    "gridder": "awproject", "pblimit": 0.02, "conjbeams": True, "usepointing": True, "mosweight": False,
    "rotatepastep": 5.0, "computepastep": 360.0, "psterm": False, "aterm": True, "wbawp": True,
    "pointingoffsetsigdev": [300, 30], "psfcutoff": 0.35,
}

STATWT = {"datacolumn": "residual_data", "combine": "field,scan,state,corr", "timebin": "1yr", "chanbin": 1,
          "fitspw": "", "field": "", "spw": ""}

MOSAIC_MODE = "VLASS-SE-CONT-MOSAIC"
# imaging_mode -> (gridder, wprojplanes, default imsize), as NRAO's imageparams_factory maps them
SEIP_MODES = {
    "VLASS-SE-CONT": ("awproject", 32, 16384),
    "VLASS-SE-CONT-AWP": ("awproject", 32, 16384),
    "VLASS-SE-CONT-AWP-P032": ("awproject", 32, 16384),
    "VLASS-SE-CONT-AWP-P001": ("awproject", 1, 16384),
    "VLASS-SE-CONT-AWP2": ("awp2", 32, 16384),
    "VLASS-SE-CONT-AWP2-P032": ("awp2", 32, 16384),
    "VLASS-SE-CONT-AWP2-P001": ("awp2", 1, 16384),
    "VLASS-SE-CONT-AWPHPG": ("awphpg", 32, 16384),
    "VLASS-SE-CONT-AWPHPG-P032": ("awphpg", 32, 16384),
    "VLASS-SE-CONT-AWPHPG-P001": ("awphpg", 1, 16384),
    MOSAIC_MODE: ("mosaic", 1, 12500),
}
# gridders whose SE stage-1 imaging restorepims reproduces (spec §2.4 step 3). awp2/awphpg image
# mtmfs with specmode 'mvc' and no wbawp=False PSF (awphpg predicts through awp2): another
# imaging sequence, not reproduced here, so refused rather than restored approximately.
RESTORABLE_GRIDDERS = ("mosaic", "awproject")


class UnrestorableMode(ValueError):
    """An SEIP imaging mode whose SE model prediction this pipeline cannot reproduce."""


@dataclass(frozen=True)
class SeipMode:
    imaging_mode: str
    gridder: str
    wprojplanes: int
    imsize: int  # the mode's default imsize (pixels per side)

    @property
    def awproject(self) -> bool:
        return self.gridder == "awproject"


def seip_mode(imaging_mode: str, gridder: str | None = None, wprojplanes: int | None = None) -> SeipMode:
    """The mode's heuristics (``gridder``/``wprojplanes`` override them, as in the SEIP list);
    raises :class:`UnrestorableMode` for a mode without heuristics or with a gridder not restorable."""
    if imaging_mode not in SEIP_MODES:
        raise UnrestorableMode(f"imaging_mode {imaging_mode!r} has no VLASS-SE-CONT heuristics "
                               f"(known modes: {', '.join(sorted(SEIP_MODES))})")
    g, wp, size = SEIP_MODES[imaging_mode]
    g = gridder or g
    if g not in RESTORABLE_GRIDDERS:
        raise UnrestorableMode(f"imaging_mode {imaging_mode!r} images with gridder {g!r}, whose SE model "
                               f"prediction cannot be restored (restorable gridders: {', '.join(RESTORABLE_GRIDDERS)})")
    return SeipMode(imaging_mode, g, int(wprojplanes if wprojplanes is not None else wp), size)


def stage1_tclean(vis: str, imagename: str, imsize: list[int], cell: str, phasecenter: str,
                  mode: SeipMode | None = None) -> dict:
    """tclean arguments of the SE stage-1 imaging of one field (mosaic unless ``mode`` says otherwise);
    for awproject the caller adds ``cfcache`` (and ``wbawp=False`` for the PSF-only call)."""
    args = {"vis": vis, "imagename": imagename, "imsize": list(imsize), "cell": cell,
            "phasecenter": phasecenter, **STAGE1}
    if mode is not None and mode.awproject:
        args.update(AWPROJECT, wprojplanes=mode.wprojplanes)
    return args


def selfcal_applycal(vis: str, caltable: str, nspw_total: int, lowest_science_spw: int) -> dict:
    """applycal of the SE phase self-calibration table (combine='spw' solutions on the lowest spw)."""
    return {"vis": vis, "gaintable": [caltable], "interp": ["nearest"],
            "spwmap": [nspw_total * [lowest_science_spw]], "parang": False, "applymode": "calonly",
            "calwt": False, "flagbackup": False}
