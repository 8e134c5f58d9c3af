"""scripts/ without Airflow running: the REST client against a stand-in server, the pool's one
definition, the local driver reading its environment when called, the process-tree walks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ccip_ops.settings import IMAGING_POOL, IMAGING_POOL_DESCRIPTION
from scripts import airflow_local, airflow_setup
from scripts.airflow_api import AirflowApi, ApiError


class _Airflow(BaseHTTPRequestHandler):
    """Enough of /auth/token and /api/v2 for the client: tokens expire after ``ttl`` requests."""
    runs = [{"dag_run_id": f"r{i}", "conf": {"field_id": f"F{i % 3}"}} for i in range(7)]
    issued: list[str] = []
    ttl = 100

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="application/json"):
        raw = json.dumps(body).encode() if ctype == "application/json" else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorised(self) -> bool:
        tok = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if tok not in self.issued[-1:] or self.server.calls_with_token >= self.ttl:
            self.server.calls_with_token = 0
            return False
        self.server.calls_with_token += 1
        return True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/auth/token":
            if body != {"username": "admin", "password": "pw"}:
                return self._send(401, {"detail": "bad credentials"})
            self.issued.append(f"t{len(self.issued)}")
            return self._send(201, {"access_token": self.issued[-1]})
        if not self._authorised():
            return self._send(401, {"detail": "expired"})
        return self._send(422, {"detail": "no such field"}) if body["conf"] == {} else self._send(200, body)

    def do_GET(self):
        if self.path == "/api/v2/monitor/health":
            return self._send(200, {k: {"status": "healthy"} for k in ("metadatabase", "scheduler", "dag_processor")})
        if not self._authorised():
            return self._send(401, {"detail": "expired"})
        if self.path.startswith("/api/v2/dags/d/dagRuns?"):
            q = dict(kv.split("=") for kv in self.path.split("?")[1].split("&") if not kv.startswith("state"))
            off, lim = int(q["offset"]), int(q["limit"])
            return self._send(200, {"dag_runs": self.runs[off:off + lim], "total_entries": len(self.runs)})
        if self.path == "/plugin/page":
            return self._send(200, b"<html>ok</html>", "text/html")
        return self._send(404, {"detail": "not found"})


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    srv.calls_with_token = 0
    _Airflow.issued = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_rest_client_logs_in_pages_and_says_why_a_call_failed(server, monkeypatch):
    api = AirflowApi(server, "admin", "pw")
    assert api.healthy() and not AirflowApi("http://127.0.0.1:9").healthy()
    assert [r["dag_run_id"] for r in api.dag_runs("d", states=("queued", "running"), page=3)] == \
        [f"r{i}" for i in range(7)]
    assert api.fetch("/plugin/page") == (200, b"<html>ok</html>", "text/html")
    code, out = api.trigger("d", {}, "x")  # refused: the status and the reason, for the tests
    assert code == 422 and out["detail"] == "no such field"
    with pytest.raises(ApiError, match="HTTP 404") as e:  # raised, for the sweep
        api.call("GET", "/api/v2/nothing")
    assert e.value.status == 404
    monkeypatch.setattr(_Airflow, "ttl", 1)  # every token expires after one call: logged in again, once
    assert api.trigger("d", {"field_id": "F1"}, "y")[0] == 200
    assert api.trigger("d", {"field_id": "F1"}, "z")[0] == 200
    assert len(_Airflow.issued) == 3
    with pytest.raises(ApiError, match="/auth/token: HTTP 401"):
        AirflowApi(server, "admin", "wrong").get("/api/v2/dags")


def test_the_pool_is_made_from_the_settings_by_one_command(tmp_path, monkeypatch):
    fake = tmp_path / "airflow"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'argv'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(airflow_setup, "airflow_bin", lambda: str(fake))
    assert airflow_setup.ensure_imaging_pool({"CCIP_IMAGING_SLOTS": "3", "PATH": os.environ["PATH"]}) == 3
    assert (tmp_path / "argv").read_text() == f"pools set {IMAGING_POOL} 3 {IMAGING_POOL_DESCRIPTION}\n"
    with pytest.raises(ValueError, match="CCIP_IMAGING_SLOTS"):
        airflow_setup.ensure_imaging_pool({"CCIP_IMAGING_SLOTS": "0"})


def test_local_driver_reads_its_environment_when_called(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__API__PORT", "18099")
    assert airflow_local.home_of() == tmp_path and airflow_local.base_url() == "http://localhost:18099"
    assert airflow_local.port_of({}) == 8080 and airflow_local.home_of({}).name == ".airflow"


def test_cluster_process_walks_find_every_group_of_a_tree():
    from scripts.airflow_cluster import _group_alive, _signal_groups, _tree_pgids

    # a leader whose child runs in a process group of its own (as Airflow's task runner does)
    p = subprocess.Popen([sys.executable, "-c", "import os, subprocess, time; "
                          "subprocess.Popen(['sleep', '60'], start_new_session=True); time.sleep(60)"],
                         start_new_session=True)
    try:
        t0 = time.time()
        while len(_tree_pgids(p.pid)) < 1 and time.time() - t0 < 10:
            time.sleep(0.1)
        groups = _tree_pgids(p.pid)
        assert len(groups) == 1 and p.pid not in groups  # the grandchild's own group
        (child,) = groups
        assert _group_alive(p.pid) and _group_alive(child)
        for g in (child, p.pid):
            os.killpg(g, signal.SIGKILL)
        p.wait(5)
        t0 = time.time()
        while _group_alive(child) and time.time() - t0 < 10:
            time.sleep(0.1)
        assert not _group_alive(p.pid) and not _group_alive(child)
    finally:
        _signal_groups([p.pid, *_tree_pgids(p.pid)], signal.SIGKILL)
