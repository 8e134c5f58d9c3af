"""Archive variants: a simulated field changed the way real archives differ (issue 14 item 3).

``apply(field_dir, name)`` changes a simulated field folder in place (run it on a copy, or pass
``variants=`` to :func:`ccip_ops.simulate.simulate_field`); ``truth.json`` records what was done.

- ``two_observations``: the rows of the last pass get OBSERVATION_ID 1, each OBSERVATION row's
  TIME_RANGE covers its own rows (observation 0 alone ends early);
- ``stale_observation_row``: OBSERVATION row 0's TIME_RANGE covers only the first minute;
- ``calibrator_field``: field 0 (VLASS name, inside the box) observed with CALIBRATE_PHASE, not
  TARGET;
- ``missing_spw``: no rows for spw 17 (its SPECTRAL_WINDOW row stays), which the lists name;
- ``model_imsize``: the tarball's SE model images padded by 32 px on each side (as if SE had
  imaged a larger image on the same grid); ``model_cell``: their cell changed by 10 %;
  ``mask_cell``: the Tier-1 mask's cell changed by 10 %.
"""
from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .. import casa_env
from ..casatables import table

CALIBRATOR = "CALIBRATE_PHASE#UNSPECIFIED"
MISSING_SPW = 17
PAD_PX = 32


def _state_row(ms: Path, mode: str) -> int:
    with table(ms / "STATE", nomodify=False) as tb:
        modes = list(tb.getcol("OBS_MODE")) if tb.nrows() else []
        if mode in modes:
            return modes.index(mode)
        tb.addrows(1)
        k = tb.nrows() - 1
        tb.putcell("OBS_MODE", k, mode)
        for c, v in (("SIG", True), ("REF", False), ("CAL", 0.0), ("LOAD", 0.0), ("SUB_SCAN", 0), ("FLAG_ROW", False)):
            tb.putcell(c, k, v)
        return k


def _pims(field_dir: Path) -> Path:
    return next(p for p in field_dir.glob("*.ms") if p.is_dir())


def two_observations(field_dir: Path) -> dict:
    ms = _pims(field_dir)
    with table(ms, nomodify=False) as tb:
        t = tb.getcol("TIME")
        cut = 0.5 * (t.min() + t.max())
        obs = (t > cut).astype(np.int32)
        tb.putcol("OBSERVATION_ID", obs)
        dt = tb.getcol("INTERVAL")
    with table(ms / "OBSERVATION", nomodify=False) as tb:
        tb.copyrows(str(ms / "OBSERVATION"), startrowin=0, nrow=1)
        for o in (0, 1):
            sel = obs == o
            tb.putcell("TIME_RANGE", o, np.array([np.min(t[sel] - dt[sel] / 2), np.max(t[sel] + dt[sel] / 2)]))
    return {"observation_split_time_s": float(cut)}


def stale_observation_row(field_dir: Path) -> dict:
    ms = _pims(field_dir)
    with table(ms / "OBSERVATION", nomodify=False) as tb:
        r = tb.getcell("TIME_RANGE", 0)
        tb.putcell("TIME_RANGE", 0, np.array([r[0], r[0] + 60.0]))
    return {"stale_time_range_s": [float(r[0]), float(r[0] + 60.0)]}


def calibrator_field(field_dir: Path) -> dict:
    ms = _pims(field_dir)
    k = _state_row(ms, CALIBRATOR)
    with table(ms, nomodify=False) as tb:
        fid, st = tb.getcol("FIELD_ID"), tb.getcol("STATE_ID")
        st[fid == 0] = k
        tb.putcol("STATE_ID", st)
    with table(ms / "FIELD") as tb:
        name = str(tb.getcell("NAME", 0))
    return {"calibrator_field": {"id": 0, "name": name}}


def missing_spw(field_dir: Path) -> dict:
    ms = _pims(field_dir)
    with table(ms / "DATA_DESCRIPTION") as tb:
        dds = [i for i, s in enumerate(tb.getcol("SPECTRAL_WINDOW_ID")) if int(s) == MISSING_SPW]
    # the simulator's storage managers cannot remove rows: copy the other rows into a new MS
    kept = ms.with_name(ms.name + ".kept")
    with table(ms) as tb:
        sub = tb.query(f"DATA_DESC_ID NOT IN {list(dds)}")
        sub.copy(str(kept), deep=True, valuecopy=True)
        sub.close()
    shutil.rmtree(ms)
    kept.rename(ms)
    return {"missing_spw": MISSING_SPW}


def _rewrite_models(field_dir: Path, change, part: str = ".model.tt") -> list[str]:
    """Rewrite the tarball with every image whose name contains ``part`` replaced by
    ``change(ia_in, outfile)``."""
    tgz = field_dir / "reimaging_resources.tgz"
    ia = casa_env.tools().image()
    changed = []
    with tempfile.TemporaryDirectory(dir=field_dir) as tmp:
        tmp = Path(tmp)
        with tarfile.open(tgz, "r:gz") as tar:
            tops = sorted({Path(m.name).parts[0] for m in tar.getmembers()})
            tar.extractall(tmp, filter="data")
        for top in tops:
            if part not in top:
                continue
            src, new = tmp / top, tmp / (top + ".new")
            ia.open(str(src))
            change(ia, str(new))
            ia.done()
            shutil.rmtree(src)
            new.rename(src)
            changed.append(top)
        with tarfile.open(tgz, "w:gz") as tar:
            for top in tops:
                tar.add(tmp / top, arcname=top)
    return changed


def model_imsize(field_dir: Path) -> dict:
    def pad(ia, out):
        data, cs = ia.getchunk(), ia.coordsys()
        big = np.zeros((data.shape[0] + 2 * PAD_PX, data.shape[1] + 2 * PAD_PX) + data.shape[2:], data.dtype)
        big[PAD_PX:-PAD_PX, PAD_PX:-PAD_PX] = data
        rp = cs.referencepixel()["numeric"]
        rp[0] += PAD_PX
        rp[1] += PAD_PX
        cs.setreferencepixel(rp)
        ib = casa_env.tools().image()
        ib.fromarray(outfile=out, pixels=big, csys=cs.torecord(), overwrite=True)
        ib.setbrightnessunit(ia.brightnessunit())
        ib.done()
        cs.done()
    return {"model_pad_px": PAD_PX, "models": _rewrite_models(field_dir, pad)}


def _recell(ia, out):
    cs = ia.coordsys()
    inc = cs.increment()["numeric"]
    inc[0] *= 1.1
    inc[1] *= 1.1
    cs.setincrement(inc)
    ib = casa_env.tools().image()
    ib.fromarray(outfile=out, pixels=ia.getchunk(), csys=cs.torecord(), overwrite=True)
    ib.setbrightnessunit(ia.brightnessunit())
    ib.done()
    cs.done()


def model_cell(field_dir: Path) -> dict:
    return {"model_cell_factor": 1.1, "models": _rewrite_models(field_dir, _recell)}


def mask_cell(field_dir: Path) -> dict:
    return {"mask_cell_factor": 1.1, "masks": _rewrite_models(field_dir, _recell, "tier1.mask")}


VARIANTS = {f.__name__: f for f in (two_observations, stale_observation_row, calibrator_field, missing_spw,
                                     model_imsize, model_cell, mask_cell)}


def apply(field_dir: str | Path, name: str) -> dict:
    """Apply one variant to a field folder in place; recorded under ``variants`` in truth.json."""
    if name not in VARIANTS:
        raise ValueError(f"unknown archive variant {name!r}; choose from {sorted(VARIANTS)}")
    field_dir = Path(field_dir)
    did = VARIANTS[name](field_dir)
    truth_path = field_dir / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        truth.setdefault("variants", {})[name] = did
        truth_path.write_text(json.dumps(truth, indent=1))
    return did
