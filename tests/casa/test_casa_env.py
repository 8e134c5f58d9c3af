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


THREADS = r"""
import os
from ccip_ops import casa_env
casa_env.ensure()
print(os.environ.get("OMP_NUM_THREADS"))
"""


@pytest.mark.parametrize("value,preset,expect", [("1", None, "1"), ("3", None, "3"), ("", None, None),
                                                  ("2", "4", "4")])
def test_casa_threads_sets_openmp_before_casatools_loads(value, preset, expect):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CCIP_CASA_THREADS")}
    env["CCIP_CASA_THREADS"] = value
    if preset:
        env["OMP_NUM_THREADS"] = preset  # an operator's explicit OpenMP setting is kept
    out = subprocess.run([sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(expect)


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_bad_casa_threads_is_refused_by_name(bad):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["CCIP_CASA_THREADS"] = bad
    out = subprocess.run([sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"CCIP_CASA_THREADS={bad!r}" in out.stderr and "positive integer" in out.stderr


def test_local_airflow_gives_each_task_cores_over_slots_and_refuses_a_bad_setting():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "airflow_local", Path(__file__).resolve().parents[2] / "scripts" / "airflow_local.py")
    al = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(al)
    cores = os.cpu_count() or 1
    assert al.casa_threads({"CCIP_IMAGING_SLOTS": "1"}) == cores
    assert al.casa_threads({"CCIP_IMAGING_SLOTS": str(cores * 4)}) == 1  # never below one thread
    assert al.casa_threads({"CCIP_IMAGING_SLOTS": "1", "CCIP_CASA_THREADS": "3"}) == 3  # explicit wins
    with pytest.raises(ValueError, match="CCIP_CASA_THREADS='0'"):  # refused before Airflow starts
        al.casa_threads({"CCIP_CASA_THREADS": "0"})
