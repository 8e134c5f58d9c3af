"""Write a synthetic VLASS Per-Image Measurement Set (PIMS) with casatools.

The MS skeleton (antennas, spws, fields, scans, UVW) comes from the casatools simulator with
telescope name ``EVLA`` (so that the mosaic gridder uses the VLA primary beam). The
visibilities are then computed here, exactly, for each row and channel: each source's true
IQUV at the channel frequency (spectral index, rotation measure), attenuated by CASA's own
EVLA primary beam at that pointing and frequency (from ``imager.makeimage(type='pb')``), in
CASA's sign convention for circular feeds. We do not use ``sm.setvp``: it distorted the
polarisation angles of point components when checked. Then: antenna phase errors constant
per scan, thermal noise from the S-band SEFD, online-style flags, injected RFI spikes, and
optionally one spw group flagged completely.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .. import casa_env
from . import sky as skymod
from .presets import Preset

REF_EPOCH = "2020/01/15/00:00:00"  # transit reference day for hour angles
RFI_AMPLITUDE_JY = 2.0
RFI_CLIP_JY = 1.0  # SE-CONT checkflag clips above this (signal + noise stay far below)


def _antennas(config: str):
    import casadata

    cfg = Path(casadata.datapath) / "alma" / "simmos" / f"vla.{config}.cfg"
    xyz, names = [], []
    for line in cfg.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        p = line.split()
        xyz.append([float(v) for v in p[:3]])
        names.append(p[4])
    return np.array(xyz), names


def pointing_offsets(p: Preset) -> list[tuple[float, float]]:
    """(dx, dy) arcmin of each phase centre from the field centre, row by row (OTF order)."""
    out = []
    for r in range(p.rows):
        dy = (r - (p.rows - 1) / 2) * p.spacing_arcmin
        for c in range(p.cols):
            dx = (c - (p.cols - 1) / 2) * p.spacing_arcmin
            out.append((dx, dy))
    return out


def _fmt_field_name(ra: float, dec: float) -> str:
    """VLASS-style phase-centre name: HHMMSS.s+DDMMSS (starts with a digit)."""
    hh, mm, ss, sign, dd, dm, ds = skymod.sexagesimal(ra, dec)
    return f"{hh:02d}{mm:02d}{ss:04.1f}{sign}{dd:02d}{dm:02d}{ds:02.0f}"


def build_skeleton(ms: Path, p: Preset, ra0: float, dec0: float) -> dict:
    """Create the MS rows (no data yet). Returns geometry for the truth file."""
    ct = casa_env.tools()
    xyz, names = _antennas(p.config)
    sm, me = ct.simulator(), ct.measures()
    sm.open(str(ms))
    sm.setconfig(telescopename="EVLA", x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2],
                 dishdiameter=[25.0] * len(names), mount=["alt-az"], antname=names,
                 padname=names, coordsystem="global", referencelocation=me.observatory("EVLA"))
    chan_w = skymod.SPW_WIDTH_HZ / p.nchan
    for spw in range(p.nspw):
        sm.setspwindow(spwname=f"EVLA_S#A0C0#{spw}", freq=f"{skymod.spw_start_hz(spw) + chan_w / 2}Hz",
                       deltafreq=f"{chan_w}Hz", freqresolution=f"{chan_w}Hz", nchannels=p.nchan,
                       stokes="RR RL LR LL")
    sm.setfeed(mode="perfect R L")
    fields = []
    for k, (dx, dy) in enumerate(pointing_offsets(p)):
        ra, dec = skymod.offset_deg(ra0, dec0, dx, dy)
        name = _fmt_field_name(ra, dec)
        sm.setfield(sourcename=name, sourcedirection=me.direction("J2000", f"{ra}deg", f"{dec}deg"))
        fields.append({"id": k, "name": name, "ra_deg": ra, "dec_deg": dec, "dx_arcmin": dx, "dy_arcmin": dy})
    sm.setlimits(shadowlimit=0.001, elevationlimit="8.0deg")
    sm.setauto(autocorrwt=0.0)
    sm.settimes(integrationtime=f"{p.t_int_s}s", usehourangle=True,
                referencetime=me.epoch("utc", REF_EPOCH))
    dwell = p.nint * p.t_int_s
    for ha in p.visits:
        t = ha * 3600.0
        for f in fields:  # OTF-like: phase centres visited one after another along each row
            for spw in range(p.nspw):
                sm.observe(sourcename=f["name"], spwname=f"EVLA_S#A0C0#{spw}",
                           starttime=f"{t}s", stoptime=f"{t + dwell}s")
            t += dwell
    sm.close()
    # One scan per pass over a row (all spws observed simultaneously in it).
    tb = ct.table()
    tb.open(str(ms), nomodify=False)
    fid, time = tb.getcol("FIELD_ID"), tb.getcol("TIME")
    t_rel = time - time.min()
    pass_starts = np.array(sorted(ha * 3600.0 for ha in p.visits)) - min(p.visits) * 3600.0
    pass_idx = np.searchsorted(pass_starts, t_rel + 1e-3, side="right") - 1
    scan = pass_idx * p.rows + fid // p.cols + 1
    tb.putcol("SCAN_NUMBER", scan.astype(np.int32))
    tb.close()
    return {"fields": fields, "antennas": names, "n_scans": int(scan.max())}


def primary_beam_profiles(ms: Path, nchan: int, workdir: Path, spws=range(18)):
    """CASA's EVLA power primary beam as radial profiles: {spw: (r_arcmin, pb[chan, r])}."""
    ct = casa_env.tools()
    im, ia = ct.imager(), ct.image()
    out = {}
    cell_arcsec = 6.0
    npix = 512
    for spw in spws:
        name = str(workdir / f"pb_spw{spw}.im")
        im.open(str(ms))
        im.selectvis(field=0, spw=spw)
        im.defineimage(nx=npix, ny=npix, cellx=f"{cell_arcsec}arcsec", celly=f"{cell_arcsec}arcsec",
                       stokes="I", phasecenter=0, mode="channel", nchan=nchan, start=0, step=1, spw=[spw])
        im.setvp(dovp=True, usedefaultvp=True)
        im.makeimage(type="pb", image=name)
        im.close()
        ia.open(name)
        a = ia.getchunk()[:, :, 0, :]
        cs = ia.coordsys()
        ref = cs.referencepixel()["numeric"][:2]
        ia.close()
        cs.done()
        cx, cy = int(round(ref[0])), int(round(ref[1]))
        prof = a[cx:, cy, :].T  # along +x from the centre: [chan, r]
        r = np.arange(prof.shape[1]) * cell_arcsec / 60.0
        out[spw] = (r, prof)
        shutil.rmtree(name, ignore_errors=True)
    return out


def fill_data(ms: Path, p: Preset, sources: list[skymod.Source], fields: list[dict],
              pb: dict, rng: np.random.Generator) -> dict:
    """Compute DATA for every row and channel; add gains, noise, flags. Returns truth extras."""
    ct = casa_env.tools()
    tb = ct.table()
    tb.open(str(ms) + "/SPECTRAL_WINDOW")
    chan_freqs = tb.getcol("CHAN_FREQ").T  # [spw, chan]
    chan_width = float(tb.getcol("CHAN_WIDTH")[0, 0])
    tb.close()
    tb.open(str(ms) + "/DATA_DESCRIPTION")
    dd_spw = tb.getcol("SPECTRAL_WINDOW_ID")
    tb.close()
    tb.open(str(ms) + "/ANTENNA")
    nant = tb.nrows()
    tb.close()

    # antenna phase errors: one phase per antenna per scan, same for R and L and all spws
    tb.open(str(ms))
    scans = tb.getcol("SCAN_NUMBER")
    n_scans = int(scans.max())
    tb.close()
    phases = np.radians(rng.normal(0.0, p.phase_rms_deg, size=(n_scans + 1, nant)))
    phases[:, 0] = 0.0

    sigma_spw = {}
    flagged_group = {int(s) for s in p.flag_group.split(",")} if p.flag_group else set()
    src_ra = np.array([s.ra_deg for s in sources])
    src_dec = np.array([s.dec_deg for s in sources])
    rfi_spws = [3, 16]  # VLASS spws often hit by RFI
    tb.open(str(ms), nomodify=False)
    for dd in range(len(dd_spw)):
        spw = int(dd_spw[dd])
        sub = tb.query(f"DATA_DESC_ID=={dd}")
        uvw = sub.getcol("UVW")
        fid = sub.getcol("FIELD_ID")
        a1, a2 = sub.getcol("ANTENNA1"), sub.getcol("ANTENNA2")
        scan = sub.getcol("SCAN_NUMBER")
        time = sub.getcol("TIME")
        freqs = chan_freqs[spw]
        nrow, nch = uvw.shape[1], len(freqs)
        data = np.zeros((4, nch, nrow), dtype=np.complex128)
        r_prof, pb_prof = pb[spw]
        for f in fields:
            sel = fid == f["id"]
            if not sel.any():
                continue
            l, m, n = skymod.direction_cosines(src_ra, src_dec, f["ra_deg"], f["dec_deg"])
            r_arcmin = np.degrees(np.arcsin(np.sqrt(l * l + m * m))) * 60.0
            for k, s in enumerate(sources):
                att = np.array([np.interp(r_arcmin[k], r_prof, pb_prof[c], right=0.0) for c in range(nch)])
                if not att.any():
                    continue
                i, q, u, v = skymod.stokes_at(s, freqs)
                # CASA's convention: V = S exp(+2 pi i (ul+vm+w(n-1))/lambda) (checked against
                # sm.predict), RR = I+V, RL = Q+iU, LR = Q-iU, LL = I-V (checked by imaging with
                # tclean; sm.predict writes RL = Q-iU, which tclean images as -U).
                ph = np.exp(2j * np.pi * np.outer(freqs / skymod.C_LIGHT,
                                                  uvw[0, sel] * l[k] + uvw[1, sel] * m[k]
                                                  + uvw[2, sel] * (n[k] - 1.0)))
                w = att[:, None] * ph
                data[0][:, sel] += (i + v)[:, None] * w
                data[1][:, sel] += (q + 1j * u)[:, None] * w
                data[2][:, sel] += (q - 1j * u)[:, None] * w
                data[3][:, sel] += (i - v)[:, None] * w
        g = np.exp(1j * (phases[scan, a1] - phases[scan, a2]))
        data *= g[None, None, :]
        sig = skymod.visibility_sigma(freqs, chan_width, p.t_int_s)  # [chan]
        sigma_spw[spw] = float(np.mean(sig))
        noise = rng.normal(size=data.shape) + 1j * rng.normal(size=data.shape)
        data += noise * sig[None, :, None]
        flag = np.zeros(data.shape, dtype=bool)
        # online-style flags: a few antenna-time ranges, and the band edge channel of spw 2 / 17
        bad_ant = rng.choice(np.arange(1, nant), size=2, replace=False)  # never the refant (0)
        tmid = np.median(time)
        flag[:, :, ((a1 == bad_ant[0]) | (a2 == bad_ant[0])) & (time < tmid)] = True
        flag[:, :, ((a1 == bad_ant[1]) | (a2 == bad_ant[1])) & (time > tmid)] = True
        if spw in (2, 17) and nch > 2:
            flag[:, 0 if spw == 2 else nch - 1, :] = True
        # RFI spikes that the SE-CONT checkflag step finds and flags
        if spw in rfi_spws:
            hit = rng.random(nrow) < 0.03
            data[:, nch // 2, hit] += RFI_AMPLITUDE_JY
        if spw in flagged_group:
            flag[:] = True
        sub.putcol("DATA", data.astype(np.complex64))
        sub.putcol("FLAG", flag)
        sub.putcol("SIGMA", np.full((4, nrow), float(np.mean(sig)), dtype=np.float32))
        sub.putcol("WEIGHT", np.full((4, nrow), float(1 / np.mean(sig) ** 2), dtype=np.float32))
        sub.close()
    tb.close()
    return {
        "chan_width_hz": chan_width,
        "chan_freqs_hz": {str(s): chan_freqs[s].tolist() for s in range(chan_freqs.shape[0])},
        "vis_sigma_jy": {str(k): v for k, v in sigma_spw.items()},
        "phase_rms_deg": p.phase_rms_deg,
        "rfi_spws": rfi_spws,
        "rfi_amplitude_jy": RFI_AMPLITUDE_JY,
    }


def set_observation_time_range(ms: Path) -> None:
    """The OBSERVATION row's TIME_RANGE over its rows, as a real PIMS has it (CASA's simulator
    writes only the first integration's 10 s)."""
    ct = casa_env.tools()
    tb = ct.table()
    tb.open(str(ms))
    t, dt = tb.getcol("TIME"), tb.getcol("INTERVAL")
    tb.close()
    tb.open(str(ms / "OBSERVATION"), nomodify=False)
    tb.putcell("TIME_RANGE", 0, np.array([np.min(t - dt / 2), np.max(t + dt / 2)]))
    tb.close()


def write_pims(ms: Path, p: Preset, field_id: str, workdir: Path) -> dict:
    """Create the PIMS ``ms`` and return the truth dictionary."""
    rng = np.random.default_rng(p.seed)
    ra0, dec0 = skymod.field_centre_deg(field_id)
    if ms.exists():
        shutil.rmtree(ms)
    geo = build_skeleton(ms, p, ra0, dec0)
    sources = skymod.make_sky(ra0, dec0, rng, p.n_faint, [(f["dx_arcmin"], f["dy_arcmin"]) for f in geo["fields"]])
    pb = primary_beam_profiles(ms, p.nchan, workdir, range(p.nspw))
    extra = fill_data(ms, p, sources, geo["fields"], pb, rng)
    set_observation_time_range(ms)
    return {
        "field_id": field_id,
        "phasecenter_deg": [ra0, dec0],
        "telescope": "EVLA",
        "configuration": p.config,
        "ref_epoch_utc": REF_EPOCH,
        "fields": geo["fields"],
        "n_scans": geo["n_scans"],
        "antennas": geo["antennas"],
        "sources": [s.to_json() for s in sources],
        "flagged_group": p.flag_group,
        **extra,
    }
