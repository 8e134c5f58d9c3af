"""Size presets of simulated fields.

VLASS itself is B configuration imaged at 0.6 arcsec in 12500-pixel images. The pipeline's
behaviour does not depend on the configuration, only its cost does, so the test and demo
presets use the compact D configuration with a few-arcsec cell, which images a small mosaic
in a few hundred pixels. ``vlass-b`` keeps the real geometry for benchmarks. ``awp`` makes its
SE-CONT products with aw-projection (``se_mode``), on one spw.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    config: str = "d"  # VLA configuration file vla.<config>.cfg from casadata
    nchan: int = 2  # channels per 128 MHz spw
    rows: int = 2  # OTF scan rows
    cols: int = 3  # phase centres per row
    spacing_arcmin: float = 7.2  # VLASS row spacing; also the along-row spacing here
    visits: tuple[float, ...] = (-1.0, 1.0)  # hour angles (h) of the passes over the field
    nint: int = 2  # integrations per phase centre per pass
    t_int_s: float = 5.0
    imsize: int = 320
    cell_arcsec: float = 5.0
    n_faint: int = 4
    spw_groups: tuple[str, ...] = ("2,3,4,5", "6,7,8,9", "10,11,12,13", "14,15,16,17")
    flag_group: str | None = "14,15,16,17"  # spw group flagged completely (None: none)
    phase_rms_deg: float = 30.0
    seed: int = 2048
    nspw: int = 18  # spws 0..nspw-1 in the PIMS (VLASS: 18)
    se_mode: str = "VLASS-SE-CONT-MOSAIC"  # SEIP imaging_mode the SE-CONT products are made with
    seip_spw: str = "2~17"  # SEIP_parameter.list's spw (the transform's selection)

    def to_json(self) -> dict:
        d = asdict(self)
        d["visits"] = list(self.visits)
        d["spw_groups"] = list(self.spw_groups)
        return d


PRESETS = {
    "tiny": Preset("tiny"),
    "small": Preset("small", nchan=2, rows=3, cols=3, visits=(-1.5, 1.5), imsize=360,
                    spw_groups=("2,3", "4,5", "6,7", "8,9", "10,11", "12,13", "14,15", "16,17"),
                    flag_group="16,17", n_faint=8),
    # the smallest field that shows the aw-projection restore: one imaged spw of 2 channels
    # (nterms=2 needs two frequencies), 256 px, awproject with wprojplanes=1 (P001); the PIMS has
    # spws 0-2 only, as the wide-band CF cache holds one CF per spw of the MS (~25 s each here)
    "awp": Preset("awp", nchan=2, nspw=3, imsize=256, spw_groups=("2",), flag_group=None, seip_spw="2",
                  se_mode="VLASS-SE-CONT-AWP-P001", n_faint=3),
    "vlass-b": Preset("vlass-b", config="b", nchan=4, rows=3, cols=4, visits=(-1.0, 0.0, 1.0),
                      imsize=12500, cell_arcsec=0.6, flag_group=None,
                      spw_groups=tuple(str(s) for s in range(2, 18)), n_faint=20),
}


def get(name: str, **overrides) -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return replace(p, **overrides) if overrides else p
