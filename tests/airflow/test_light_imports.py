"""What every process pays: the sweep DAG parses fast without CASA, and the weblog plugin (loaded by
every task process, not only by the API server) imports neither CASA nor the API server's security
module until a page is asked for."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = r"""
import json, sys, time
import airflow.sdk, airflow.sdk.exceptions, airflow.plugins_manager
import importlib.util
out = {}
for name, path in (("reprocess", sys.argv[1]), ("plugin", sys.argv[2])):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    t0 = time.time()
    spec.loader.exec_module(m)
    out[name] = time.time() - t0
out["casa"] = sorted(k for k in sys.modules if k.startswith(("casatools", "casatasks")))
out["security"] = "airflow.api_fastapi.core_api.security" in sys.modules
print(json.dumps(out))
"""


def test_sweep_dag_and_plugin_import_light():
    out = subprocess.run([sys.executable, "-c", CODE, str(ROOT / "dags" / "vlass_se_cube_reprocess.py"),
                          str(ROOT / "plugins" / "ccip_weblog.py")],
                         capture_output=True, text=True, env=dict(os.environ), timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["casa"] == [] and d["security"] is False, d
    assert d["reprocess"] < 1.0, d
