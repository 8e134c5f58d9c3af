"""A real tclean through the stage runner (issue 17): its major cycles, iteration counts and peak
residuals reach the task log while tclean is still running, and the stale leap-second table of the
pinned casadata reaches it as a clear warning. A six-antenna, two-channel MS made with the
simulator tool in a few seconds; tclean of a 512x512 image with 40 major cycles, long enough (seconds) on any machine for lines
to arrive before it ends."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ccip_ops.stages._casalog import LEAP_SECOND

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.casa


def _small_ms(path):
    from ccip_ops import casa_env

    ct = casa_env.tools()
    sm, me = ct.simulator(), ct.measures()
    sm.open(str(path))
    sm.setconfig(telescopename="VLA", x=[0, 100, -80, 30, 200, -150.], y=[0, 50, 120, -140, -60, 90.], z=np.zeros(6),
                 dishdiameter=[25.] * 6, mount="alt-az", antname=[f"A{i}" for i in range(6)], coordsystem="local",
                 referencelocation=me.observatory("VLA"))
    sm.setspwindow(spwname="s", freq="3GHz", deltafreq="10MHz", freqresolution="10MHz", nchannels=2, stokes="RR LL")
    sm.setfeed("perfect R L")
    sm.setfield(sourcename="F", sourcedirection=me.direction("J2000", "0h50m0s", "-2d30m0s"))
    sm.setlimits(shadowlimit=0.01, elevationlimit="1deg")
    sm.setauto(0.0)
    sm.settimes(integrationtime="60s", usehourangle=True, referencetime=me.epoch("UTC", "2020/01/01"))
    sm.observe("F", "s", starttime="0s", stoptime="1200s")
    cl = ct.componentlist()
    cl.addcomponent(dir="J2000 0h50m0s -2d30m0s", flux=1.0, fluxunit="Jy", freq="3GHz", shape="point")
    cl.rename(str(path) + ".cl")
    cl.close()
    sm.predict(complist=str(path) + ".cl")
    sm.close()


RUN = r"""
import json, logging, sys
from pathlib import Path
from ccip_ops.stages._casa import Casa

class H(logging.Handler):
    def emit(self, r):
        print(json.dumps({"t": r.created, "thread": r.threadName, "level": r.levelno, "msg": r.getMessage()}))

logging.getLogger("ccip").addHandler(H())
logging.getLogger("ccip").setLevel(logging.INFO)
w = Path(sys.argv[1])
casa = Casa(w, "g0")
casa("tclean", vis=str(w / "small.ms"), imagename=str(w / "s7_0.X.g0.IQUV.iter1"), imsize=512, cell="5arcsec",
     niter=120, cycleniter=3, gain=0.05, threshold="0mJy", specmode="mfs", deconvolver="hogbom")
print(json.dumps({"record": casa.records()[-1]}))
"""


def test_tclean_progress_arrives_before_the_call_ends(tmp_path):
    # each in a fresh process: CASA says the leap-second warning once per process, at its first
    # UTC conversion, which must be the runner's call here
    env = dict(os.environ, CCIP_CASA_HEARTBEAT_S="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", f"from tests.casa.test_casa_progress import _small_ms; "
                    f"_small_ms({str(tmp_path / 'small.ms')!r})"], check=True, cwd=ROOT, env=env, timeout=300)
    out = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    rec = lines[-1]["record"]
    during = [x["msg"] for x in lines[:-1] if x["thread"].startswith("casalog-") and x["t"] < rec["end_unix"] - 0.2]
    assert any("tclean [iter1]: major cycle 2," in m and "peak residual" in m for m in during), during
    assert any("still running" in m and "RSS" in m for m in during), during
    assert rec["major_cycles"] >= 3 and rec["iterations"] == 120 and 0 < rec["peak_residual"] < 1.0
    # the observation (2020) is newer than the pinned casadata's leap-second table: said clearly, once
    leap = [x for x in lines[:-1] if LEAP_SECOND in x["msg"]]
    assert [x["level"] for x in leap] == [logging.WARNING], out.stdout[-3000:]
