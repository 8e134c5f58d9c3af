"""Offline CASA: casatools/casatasks import and work from the casadata package, with the
configuration the project writes, and write nothing to HOME or the current directory."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.casa

CODE = r"""
from ccip_ops import casa_env
ct = casa_env.tools(); tk = casa_env.tasks()
me = ct.measures()
assert me.observatory('EVLA')['refer']
# a task that needs the measures data (epoch and frame conversions)
t = me.epoch('utc', '2020/01/15/00:00:00')
print(me.measure(t, 'tai')['m0']['value'])
import casaconfig.config as c
print(c.measures_auto_update, c.data_auto_update, c.measurespath)
"""


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_casa_imports_offline_and_writes_nothing_outside(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CASASITECONFIG"}
    env.update(HOME=str(home), no_proxy="*", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", CODE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("False False ") and "casadata" in lines[-1]
    assert listing(home) == [] and listing(cwd) == []
