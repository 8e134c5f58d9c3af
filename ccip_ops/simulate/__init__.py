"""Synthetic VLASS fields: a PIMS plus the VLASS-SE-CONT products, with a truth file.

``simulate_field(archive_root, field_id, preset)`` writes ``<archive_root>/<field_id>/`` as
DESIGN.md §3.1 describes:

- ``<name>.ms``: the PIMS (spws 0-17, RR RL LR LL, OTF-like phase centres, noise, phase
  errors, flags);
- ``reimaging_resources.tgz``: the SE-CONT resources (spec §2.2 member names);
- ``SEIP_parameter.list``, ``CCIP_parameter.list``;
- ``truth.json``: every injected source and observation parameter;
- ``se_cont_state.npz``: FLAG/WEIGHT/CORRECTED_DATA of the SE-CONT final state.

``variants=`` (names of :mod:`.variants`) then changes the field the way real archives differ
(two observations, a stale OBSERVATION row, a calibrator field, a missing spw, SE model images
on another grid); ``truth.json`` records them.

The folder is built beside its final place and renamed into it, so a failed simulation
never leaves a half-written field in the archive.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from .. import casa_env
from ..heuristics import se as se_heuristics
from . import presets as presetsmod
from . import sky as skymod

DEFAULT_FIELD_ID = "T10t02.J005000-023000"
EPOCH = "2.1"
CFCACHE_PRODUCTION = ("/home/vlass/packages/cfcache/cfcache_imsize16384_cell0.6arcsec_w32_conjT.cf,"
                      "/home/vlass/packages/cfcache/cfcache_imsize16384_cell0.6arcsec_w32_conjT_nowb.cf")


def names_for(field_id: str, seed: int) -> dict:
    return {
        "pims": f"VLASS{EPOCH}.sb{40000000 + seed}.eb{41000000 + seed}.58863.0123",
        "seip_imagename": f"VLASS{EPOCH}.se.{field_id}.06.{seed}.v1",
        "ccip_imagename": f"VLASS{EPOCH}.cc.{field_id}.06.{seed}.v1",
    }


def phasecenter_string(ra_deg: float, dec_deg: float) -> str:
    hh, mm, ss, sign, dd, dm, ds = skymod.sexagesimal(ra_deg, dec_deg)
    return f"J2000 {hh:02d}:{mm:02d}:{ss:06.3f} {sign}{dd:02d}.{dm:02d}.{ds:06.3f}"


def write_parameter_lists(folder: Path, field_id: str, p: presetsmod.Preset, names: dict) -> None:
    ra, dec = skymod.field_centre_deg(field_id)
    pc = phasecenter_string(ra, dec)
    common = (f"phasecenter={pc!r}\nimsize=[{p.imsize}, {p.imsize}]\ncell=['{p.cell_arcsec}arcsec']\n")
    seip_extra = "" if p.seip_spw == "2~17" else f"spw={p.seip_spw!r}\n"
    if se_heuristics.seip_mode(p.se_mode).awproject:
        # as production lists do: the CF caches on the SE cluster, not readable here (recomputed)
        seip_extra += f"cfcache={CFCACHE_PRODUCTION!r}\n"
    (folder / "SEIP_parameter.list").write_text(
        "# VLASS-SE-CONT parameter list of the simulated field\n"
        f"imaging_mode={p.se_mode!r}\n"
        f"imagename={names['seip_imagename']!r}\n" + common + seip_extra)
    (folder / "CCIP_parameter.list").write_text(
        "# VLASS-SE-CUBE parameter list of the simulated field\n"
        "imaging_mode='VLASS-SE-CUBE'\n"
        f"imagename={names['ccip_imagename']!r}\n" + common
        + f"spw={list(p.spw_groups)!r}\n")


def simulate_field(archive_root: str | Path, field_id: str = DEFAULT_FIELD_ID,
                   preset: str | presetsmod.Preset = "tiny", log=print, variants: tuple[str, ...] = ()) -> Path:
    from . import observe, secont
    from . import variants as variantsmod

    for v in variants:
        if v not in variantsmod.VARIANTS:
            raise ValueError(f"unknown archive variant {v!r}; choose from {sorted(variantsmod.VARIANTS)}")

    p = presetsmod.get(preset) if isinstance(preset, str) else preset
    skymod.field_centre_deg(field_id)  # validates the id
    archive_root = Path(archive_root).resolve()
    archive_root.mkdir(parents=True, exist_ok=True)
    final = archive_root / field_id
    build = Path(tempfile.mkdtemp(prefix=f".{field_id}.building-", dir=archive_root))
    t0 = time.time()
    try:
        casa_env.set_log(casa_env.casa_dir() / "logs" / f"simulate-{field_id}.log")
        names = names_for(field_id, p.seed)
        pims = build / f"{names['pims']}.ms"
        log(f"[simulate] PIMS {pims.name} ({p.name}: VLA-{p.config.upper()}, {p.rows}x{p.cols} pointings, "
            f"{p.nchan} chan/spw)")
        truth = observe.write_pims(pims, p, field_id, build)
        write_parameter_lists(build, field_id, p, names)
        ra, dec = skymod.field_centre_deg(field_id)
        log(f"[simulate] SE-CONT ({p.se_mode}): transform, imaging, checkflag, statwt, selfcal, masks")
        se = secont.run_se_cont(pims, build / "se_working", names["seip_imagename"], p.imsize,
                                f"{p.cell_arcsec}arcsec", phasecenter_string(ra, dec),
                                truth["sources"], p.seip_spw, build / "reimaging_resources.tgz",
                                build / "se_cont_state.npz", p.se_mode)
        secont.cleanup(build / "se_working")
        truth.update({"preset": p.to_json(), "names": names, "se_cont": se,
                      "casa": casa_env.versions()})
        (build / "truth.json").write_text(json.dumps(truth, indent=1))
        for v in variants:
            log(f"[simulate] archive variant {v}")
            variantsmod.apply(build, v)
        if final.exists():
            shutil.rmtree(final)
        build.rename(final)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log(f"[simulate] wrote {final} in {time.time() - t0:.1f} s")
    return final
