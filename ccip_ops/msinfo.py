"""What the pipeline takes from a MeasurementSet's own rows, not from one metadata row.

Real archives vary (issue 14 item 3): an MS may hold several observations, an OBSERVATION row
may be stale or partial, a field may match the VLASS name pattern without being a target, and a
PIMS may lack spws that the parameter lists name. So:

- :func:`observation_span`: start, end (hence mid-time) over the main-table rows of *all*
  observations (``TIME ± INTERVAL/2``); each OBSERVATION row's ``TIME_RANGE`` is compared with its
  own rows and a disagreement is noted (the rows win); the observatory from ``TELESCOPE_NAME``
  (one name for every observation, known to CASA's measures, else :class:`InputError`);
- :func:`target_fields`: field ids observed with the TARGET intent (STATE ``OBS_MODE`` containing
  ``OBSERVE_TARGET``), or ``None`` where the MS records no intents at all;
- :func:`spws_with_data`: the spw ids that have rows (not just SPECTRAL_WINDOW entries).

Every function reads in chunks (a VLASS PIMS has millions of rows) and names the MS in its errors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import casa_env
from .casatables import table
from .exceptions import InputError

CHUNK_ROWS = 1_000_000
TARGET_MODE = "OBSERVE_TARGET"
STALE_TOLERANCE_S = 1.0  # an OBSERVATION TIME_RANGE may be rounded; more than this is a disagreement


@dataclass(frozen=True)
class ObservationSpan:
    start_mjd: float  # UTC, first integration's start over all observations
    end_mjd: float  # UTC, last integration's end
    telescope: str
    lon_deg: float  # observatory of ``telescope`` from CASA measures
    lat_deg: float
    n_observations: int  # observation ids that have rows
    notes: tuple[str, ...] = ()  # what disagreed in the metadata (for the weblog)

    @property
    def mid_mjd(self) -> float:
        return 0.5 * (self.start_mjd + self.end_mjd)

    def to_json(self) -> dict:
        return {"start_mjd": self.start_mjd, "end_mjd": self.end_mjd, "mid_mjd": self.mid_mjd,
                "telescope": self.telescope, "lon_deg": self.lon_deg, "lat_deg": self.lat_deg,
                "n_observations": self.n_observations, "notes": list(self.notes)}


def _columns_in_chunks(vis: Path, names: tuple[str, ...]):
    with table(vis) as tb:
        n = tb.nrows()
        for start in range(0, n, CHUNK_ROWS):
            nrow = min(CHUNK_ROWS, n - start)
            yield [tb.getcol(c, startrow=start, nrow=nrow) for c in names]


def _iso(seconds_mjd: float) -> str:
    from astropy.time import Time

    return Time(seconds_mjd / 86400.0, format="mjd", scale="utc").isot


def observatory(name: str, vis: Path) -> tuple[float, float]:
    """(longitude, latitude) in degrees of a telescope name known to CASA's measures."""
    me = casa_env.tools().measures()
    try:
        obs = me.observatory(name)
    except Exception:  # noqa: BLE001 - casatools raises or returns {} for an unknown name
        obs = {}
    if not obs or "m0" not in obs:
        raise InputError(f"{vis}: telescope {name!r} (OBSERVATION TELESCOPE_NAME) is not an observatory CASA "
                         "knows; the position correction needs its location")
    pos = me.measure(obs, "WGS84")
    return math.degrees(pos["m0"]["value"]), math.degrees(pos["m1"]["value"])


def observation_span(vis: str | Path) -> ObservationSpan:
    """Start and end over every row of every observation; the observatory from the telescope name."""
    vis = Path(vis)
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for t, dt, ob in _columns_in_chunks(vis, ("TIME", "INTERVAL", "OBSERVATION_ID")):
        for o in np.unique(ob):
            sel = ob == o
            a, b = float(np.min(t[sel] - dt[sel] / 2)), float(np.max(t[sel] + dt[sel] / 2))
            lo[int(o)] = min(lo.get(int(o), a), a)
            hi[int(o)] = max(hi.get(int(o), b), b)
    if not lo:
        raise InputError(f"{vis}: the MeasurementSet has no rows, so no observation time")
    notes = []
    with table(vis / "OBSERVATION") as tb:
        nobs = tb.nrows()
        ranges = tb.getcol("TIME_RANGE") if nobs else np.zeros((2, 0))
        names = list(tb.getcol("TELESCOPE_NAME")) if nobs else []
    for o in sorted(lo):
        if o >= nobs:
            raise InputError(f"{vis}: rows refer to OBSERVATION_ID {o}, but the OBSERVATION table has {nobs} rows")
        r0, r1 = float(ranges[0, o]), float(ranges[1, o])
        if r0 - lo[o] > STALE_TOLERANCE_S or hi[o] - r1 > STALE_TOLERANCE_S:
            notes.append(f"OBSERVATION row {o} TIME_RANGE {_iso(r0)} .. {_iso(r1)} does not cover its data "
                         f"{_iso(lo[o])} .. {_iso(hi[o])}: the data's times are used")
    if len(lo) > 1:
        notes.append(f"{len(lo)} observations (ids {sorted(lo)}): start and end taken over all of them")
    scopes = sorted({str(names[o]).strip() for o in lo})
    if len(scopes) != 1 or not scopes[0]:
        raise InputError(f"{vis}: the observations name telescopes {scopes} (OBSERVATION TELESCOPE_NAME); "
                         "expected one telescope")
    lon, lat = observatory(scopes[0], vis)
    return ObservationSpan(start_mjd=min(lo.values()) / 86400.0, end_mjd=max(hi.values()) / 86400.0,
                           telescope=scopes[0], lon_deg=lon, lat_deg=lat, n_observations=len(lo),
                           notes=tuple(notes))


def target_fields(vis: str | Path) -> set[int] | None:
    """Field ids with rows whose STATE ``OBS_MODE`` contains OBSERVE_TARGET; ``None`` if the MS records
    no intents at all (an empty STATE table or no row with a state)."""
    vis = Path(vis)
    with table(vis / "STATE") as tb:
        modes = [str(m) for m in tb.getcol("OBS_MODE")] if tb.nrows() else []
    if not any(m.strip() for m in modes):
        return None
    target_states = np.array([TARGET_MODE in m for m in modes])
    out: set[int] = set()
    any_state = False
    for state, fid in _columns_in_chunks(vis, ("STATE_ID", "FIELD_ID")):
        ok = state >= 0
        any_state |= bool(ok.any())
        hit = ok.copy()
        hit[ok] = target_states[state[ok]]
        out.update(int(f) for f in np.unique(fid[hit]))
    return out if any_state else None


def spws_with_data(vis: str | Path) -> list[int]:
    """Spw ids that have main-table rows."""
    vis = Path(vis)
    with table(vis / "DATA_DESCRIPTION") as tb:
        spw_of_dd = tb.getcol("SPECTRAL_WINDOW_ID")
    dds: set[int] = set()
    for (dd,) in _columns_in_chunks(vis, ("DATA_DESC_ID",)):
        dds.update(int(d) for d in np.unique(dd))
    return sorted({int(spw_of_dd[d]) for d in dds})
