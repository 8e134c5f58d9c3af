"""docker/: the compose file validates with the compose client (no engine needed), the Dockerfile
parses (BuildKit's own parser, via the `dockerfile` package) and installs ccip the way `make` does,
and the compose deployment and the loopback test cluster (scripts/airflow_cluster.py) run with the
same Airflow settings, the one copy in docker/airflow.env."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.airflow_setup import DISTRIBUTED_ENV, VISIBILITY_TIMEOUT, check_visibility_timeout, read_env_file

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
SHARED = read_env_file(DISTRIBUTED_ENV)
# what each deployment gives itself, and why it is not in docker/airflow.env
PER_DEPLOYMENT = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "address, secret",
    "AIRFLOW__CELERY__BROKER_URL": "address, secret",
    "AIRFLOW__CELERY__RESULT_BACKEND": "address, secret",
    "AIRFLOW__API__BASE_URL": "address",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "address",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "address",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "port",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "port",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "port",
    "AIRFLOW__CORE__DAGS_FOLDER": "path",
    "AIRFLOW__CORE__PLUGINS_FOLDER": "path",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "path",
    "AIRFLOW__CORE__FERNET_KEY": "secret",
    "AIRFLOW__API_AUTH__JWT_SECRET": "secret",
    "AIRFLOW__API__SECRET_KEY": "secret",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "secret (the users)",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "sizing",
    "AIRFLOW__API__WORKERS": "sizing",
    # how soon a dead worker's task is retried: 5 minutes deployed, seconds in the test cluster
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "failure detection",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "failure detection",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "failure detection",
}
SECRETS = ("CCIP_POSTGRES_PASSWORD", "CCIP_REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
           "AIRFLOW_API_SECRET_KEY", "CCIP_SWEEP_PASSWORD")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")


def _compose_clients() -> list[list[str]]:
    clients = []
    if shutil.which("docker-compose"):
        clients.append(["docker-compose"])
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        clients.append(["docker", "compose"])
    return clients


CLIENTS = _compose_clients()
needs_compose = pytest.mark.skipif(not CLIENTS, reason="no compose client (Debian: apt-get install docker-compose; "
                                                       ".ci/run does it)")


def _generated_env() -> dict[str, str]:
    # as a deploying user (the tests may run as root, which make-env.sh refuses)
    out = subprocess.run([str(DOCKER / "make-env.sh")], capture_output=True, text=True, check=True,
                         env={**os.environ, "AIRFLOW_UID": "50000"}).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if line and not line.startswith("#"))
    assert set(SECRETS) <= set(env), env.keys()
    return env


def _config(client, env, tmp_path) -> subprocess.CompletedProcess:
    # run from an empty directory so that no stray .env is picked up; secrets only from `env`
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*client, "-f", str(COMPOSE), "--project-directory", str(DOCKER), "config"],
                          capture_output=True, text=True, env={**clean, **env}, cwd=tmp_path)


@needs_compose
@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: " ".join(c))
def test_compose_config_validates_and_has_the_deployment(client, tmp_path):
    import yaml

    if (DOCKER / ".env").exists():
        pytest.skip("docker/.env exists (a real deployment's secrets): not overriding it in a test")
    env = _generated_env()
    out = _config(client, env, tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    svc = cfg["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(svc)
    for name in ("postgres", "redis", *AIRFLOW_SERVICES):
        assert svc[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert int(svc["airflow-worker"]["deploy"]["replicas"]) >= 2
    assert svc["airflow-worker"]["command"] in (["celery", "worker"], "celery worker")
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        s = svc[name]
        e = s["environment"]
        assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert e["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["CCIP_POSTGRES_PASSWORD"] in e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert e["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"]
        targets = {v["target"]: v for v in s["volumes"]} if isinstance(s["volumes"][0], dict) else {
            v.split(":")[1]: {"read_only": v.endswith(":ro"), "source": v.split(":")[0]} for v in s["volumes"]}
        assert targets["/data/archive"]["read_only"], f"{name}: the archive must be mounted read-only"
        assert not targets["/data/work"].get("read_only"), name
        assert e["CCIP_ARCHIVE_ROOT"] == "/data/archive" and e["CCIP_WORK_ROOT"] == "/data/work"
        if name != "airflow-init":
            assert svc[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        for key, value in SHARED.items():  # docker/airflow.env, unchanged
            assert str(e.get(key)) == value, f"{name}: {key}={e.get(key)!r}, docker/airflow.env says {value!r}"
    init = " ".join(svc["airflow-init"]["command"])
    # the pool as the local Airflow and the test cluster make it (scripts.airflow_setup.ensure_imaging_pool)
    assert "airflow db migrate" in init and "python -m scripts.airflow_setup init" in init
    # safe on day one (issue 17): the sweep's own user and connection made by init; its password and
    # the users' passwords file only where needed; the API on loopback; the official optional services
    assert "python -m scripts.airflow_setup sweep-user /opt/airflow/config/simple_auth_manager_passwords.json" in init
    assert svc["airflow-init"]["environment"]["CCIP_SWEEP_PASSWORD"] == env["CCIP_SWEEP_PASSWORD"]
    for name in AIRFLOW_SERVICES:
        assert "CCIP_SWEEP_PASSWORD" not in svc[name]["environment"], name
        users = svc[name]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
        assert "ccip_sweep:user" in users and "admin:admin" in users
        mounts = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in svc[name]["volumes"]]
        assert ("/opt/airflow/config" in mounts) == (name == "airflow-apiserver"), (name, mounts)
    ports = svc["airflow-apiserver"]["ports"]
    host_ips = [p.get("host_ip") if isinstance(p, dict) else p.split(":")[0] for p in ports]
    assert host_ips == ["127.0.0.1"], ports
    assert SHARED["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"


def _compose_yaml() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_official_cli_and_flower_profiles():
    svc = _compose_yaml()["services"]
    assert svc["airflow-cli"]["profiles"] == ["debug"] and svc["airflow-cli"]["command"] == ["bash", "-c", "airflow"]
    assert svc["flower"]["profiles"] == ["flower"] and svc["flower"]["command"] == "celery flower"
    assert svc["flower"]["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]
    assert svc["flower"]["healthcheck"]["test"]


def test_make_env_refuses_root_and_writes_a_private_file(tmp_path):
    out = subprocess.run([str(DOCKER / "make-env.sh")], capture_output=True, text=True,
                         env={**os.environ, "AIRFLOW_UID": "0"})
    assert out.returncode != 0 and "AIRFLOW_UID would be 0" in out.stderr
    f = tmp_path / ".env"
    subprocess.run([str(DOCKER / "make-env.sh"), str(f)], check=True, capture_output=True,
                   env={**os.environ, "AIRFLOW_UID": "50000"})
    assert f.stat().st_mode & 0o777 == 0o600 and "AIRFLOW_UID=50000" in f.read_text()
    again = subprocess.run([str(DOCKER / "make-env.sh"), str(f)], capture_output=True, text=True,
                           env={**os.environ, "AIRFLOW_UID": "50000"})
    assert again.returncode != 0 and "not overwriting" in again.stderr


def test_sweep_password_is_merged_into_the_users_file(tmp_path):
    import json

    from scripts.airflow_setup import SWEEP_USER, write_sweep_password

    f = tmp_path / "config" / "simple_auth_manager_passwords.json"
    write_sweep_password(f, "s" * 24)
    f.write_text(json.dumps({**json.loads(f.read_text()), "admin": "generated-by-the-api-server"}))
    write_sweep_password(f, "t" * 24)  # a later init keeps the admin's password
    assert json.loads(f.read_text()) == {SWEEP_USER: "t" * 24, "admin": "generated-by-the-api-server"}
    assert f.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="CCIP_SWEEP_PASSWORD"):
        write_sweep_password(f, "")


def test_compose_loads_the_shared_settings_and_adds_only_its_own():
    svc = _compose_yaml()["services"]
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        s = svc[name]
        assert s.get("env_file") in ("airflow.env", ["airflow.env"]), f"{name} does not load docker/airflow.env"
        env = s["environment"]
        assert not set(env) & set(SHARED), f"{name} repeats settings of docker/airflow.env: {set(env) & set(SHARED)}"
        own = {k for k in env if k.startswith("AIRFLOW__")} - set(PER_DEPLOYMENT)
        assert not own, f"{name}: {sorted(own)} are neither in docker/airflow.env nor a deployment's own"


def test_the_test_cluster_runs_the_shared_settings_and_adds_only_its_own(tmp_path):
    from scripts.airflow_cluster import Cluster

    c = Cluster(base=tmp_path)
    c.pg_port, c.redis_port, c.api_port = 5432, 6379, 8080
    env = c.airflow_env()
    for key, value in SHARED.items():
        assert env[key] == value, key
    own = {k for k in env if k.startswith("AIRFLOW__")} - set(SHARED) - set(PER_DEPLOYMENT)
    assert not own, f"the test cluster sets {sorted(own)}: put them in docker/airflow.env, or declare them here"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_broker_never_hands_a_running_imaging_task_to_a_second_worker():
    from ccip_ops.settings import IMAGING_TIMEOUT_H_DEFAULT

    vt = int(SHARED[VISIBILITY_TIMEOUT])
    assert vt > IMAGING_TIMEOUT_H_DEFAULT * 3600
    assert check_visibility_timeout({**SHARED}) == vt
    assert check_visibility_timeout({**SHARED, "CCIP_IMAGING_TIMEOUT_H": "40"}) == vt
    with pytest.raises(ValueError, match="CCIP_IMAGING_TIMEOUT_H=48"):  # init and the cluster refuse to start
        check_visibility_timeout({**SHARED, "CCIP_IMAGING_TIMEOUT_H": "48"})
    with pytest.raises(ValueError, match=VISIBILITY_TIMEOUT):  # the Celery provider's default (24 h) is too short
        check_visibility_timeout({})


def test_env_file_is_read_as_compose_reads_it(tmp_path):
    f = tmp_path / "a.env"
    f.write_text("# comment\n\nA=1\nB=x=y\n")
    assert read_env_file(f) == {"A": "1", "B": "x=y"}
    for bad in ('A="1"', "A=${B}", "A"):
        f.write_text(bad + "\n")
        with pytest.raises(ValueError, match="a.env:1"):
            read_env_file(f)


@needs_compose
def test_compose_refuses_to_start_without_its_secrets(tmp_path):
    env = _generated_env()
    del env["AIRFLOW_FERNET_KEY"]
    out = _config(CLIENTS[0], env, tmp_path)
    assert out.returncode != 0
    assert "docker/make-env.sh" in out.stderr


def test_no_secret_in_the_repository_files():
    text = COMPOSE.read_text()
    for key in SECRETS:
        assert re.search(r"\$\{" + key + r":\?", text), f"{key} must come from the environment, required"
    for key, value in re.findall(r"^\s*(\w*(?:PASSWORD|SECRET|FERNET_KEY)(?!S_FILE)\w*):\s*(\S.*)$", text, re.M):
        assert value.startswith("${"), f"{key}: a literal value in the compose file"
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert "docker/.env" in gitignore


def test_make_env_generates_fresh_secrets():
    a, b = _generated_env(), _generated_env()
    for key in SECRETS:
        assert len(a[key]) >= 32 and a[key] != b[key]
    from cryptography.fernet import Fernet

    Fernet(a["AIRFLOW_FERNET_KEY"].encode())  # a valid Fernet key


def test_dockerfile_is_the_pinned_airflow_image_with_makes_install_steps():
    import tomllib

    import dockerfile

    cmds = dockerfile.parse_file(str(DOCKER / "Dockerfile"))  # BuildKit's parser: raises on a syntax error
    args = {c.value[0].split("=", 1)[0]: c.value[0].split("=", 1)[1] for c in cmds if c.cmd == "ARG"}
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow_pin = next(p.split("==")[1] for p in pins if p.startswith("apache-airflow=="))
    assert args["AIRFLOW_VERSION"] == airflow_pin
    assert args["PYTHON_VERSION"] == "3.11"
    froms = [c for c in cmds if c.cmd == "FROM"]
    assert [f.value[0] for f in froms] == ["apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"]
    constraints_pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert constraints_pin == airflow_pin

    runs = " ".join(c.value[0] for c in cmds if c.cmd == "RUN")
    make = (ROOT / "Makefile").read_text()
    # make install: pip with -c constraints.txt, the distributed extra; make casa-config: ccip_ops.casa_env
    assert re.search(r"pip install -q -c constraints.txt -e '\.\[[a-z,]*distributed[a-z,]*\]'", make)
    assert re.search(r"pip install [^&]*-c constraints\.txt \"\.\[distributed\]\"", runs), runs
    assert "-m ccip_ops.casa_env" in make and "python -m ccip_ops.casa_env" in runs
    assert "pip install -q --upgrade pip wheel setuptools" in make
    assert "pip install --no-cache-dir -q --upgrade pip wheel setuptools" in runs
    # what the image copies exists and is not excluded by the build's ignore file
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for c in cmds:
        if c.cmd == "COPY":
            for src in c.value[:-1]:
                assert (ROOT / src).exists(), src
                assert "!" + src in ignore or "!" + src + "/" in ignore, f"{src} is excluded from the build context"
    assert [c.value[0] for c in cmds if c.cmd == "USER"][-1] == "airflow", "the image must not run as root"
