"""What every Airflow of the project is set up with, however it runs: one place for each.

- the ``casa_imaging`` pool (name, description and size from :mod:`ccip_ops.settings`), made by
  :func:`ensure_imaging_pool`, never with every worker slot (:func:`ccip_ops.settings.pool_size`: imaging holds its
  slots for hours, and another field's first stages, the sweep, or a weblog would wait in
  ``queued`` until Airflow fails them as stuck), for the embedded Airflow (:mod:`scripts.airflow_local`), the loopback
  cluster (:mod:`scripts.airflow_cluster`) and the docker deployment's ``airflow-init``
  (``python -m scripts.airflow_setup init``). It runs ``airflow pools set``, which needs only the
  migrated database: the pool exists before any scheduler or API server starts;
- the distributed Airflow's settings, ``docker/airflow.env``, and how long an API-server outage its
  running tasks outlive (:func:`outage_tolerance_s`), read by ``docker/docker-compose.yml``
  (``env_file``) and by the cluster harness (:func:`read_env_file`), and the rule that its Celery
  visibility timeout outlasts an imaging task (:func:`check_visibility_timeout`);
- the ``airflow`` command next to this interpreter, a free loopback port, waiting for a server.

- the archive sweep's own user and connection in the docker deployment (:func:`ensure_sweep_user`).

    python -m scripts.airflow_setup init    check the settings, create or resize the pool (docker's init)
    python -m scripts.airflow_setup sweep-user PASSWORDS_FILE   the sweep's user and connection (docker's init)
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ccip_ops.settings import (IMAGING_POOL, IMAGING_POOL_DESCRIPTION, imaging_timeout_h, longest_task_h,
                               stage_timeout_h)
from ccip_ops.settings import pool_size  # noqa: F401 - the rule lives in settings: the DAG sizes its fan-in by it

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTED_ENV = ROOT / "docker" / "airflow.env"  # in a checkout; the image gets it from compose
VISIBILITY_TIMEOUT = "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"
CELERY_DEFAULT_VISIBILITY_TIMEOUT_S = 86400  # what the Celery provider uses when it is not set
TIMEOUT_MARGIN_S = 3600  # a task's start and end around its execution_timeout, with room to spare


def free_port() -> int:
    """A free TCP port on loopback (for an Airflow that must not clash with a user's 8080)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_bin() -> str:
    """The ``airflow`` command of this interpreter's environment (the venv's, else the one on PATH)."""
    mine = Path(sys.executable).parent / "airflow"
    return str(mine) if mine.exists() else (shutil.which("airflow") or "airflow")


def run_airflow(args: list[str], env: dict, log: Path | None = None, cwd: Path | None = None) -> None:
    """``airflow ARGS`` with ``env``, its output appended to ``log`` (else to ours); raises with the
    log's tail when it fails."""
    fh = open(log, "ab") if log else None
    try:
        rc = subprocess.run([airflow_bin(), *args], stdout=fh, stderr=subprocess.STDOUT if fh else None,
                            env=env, cwd=cwd).returncode
    finally:
        if fh:
            fh.close()
    if rc != 0:
        tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"airflow {' '.join(args)} failed ({rc})" + (f"; {log}:\n{tail}" if log else ""))


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Until ``pred()`` holds; raises with the tail of ``log`` when ``proc`` exits first or after
    ``timeout`` seconds."""
    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail()}")
        if pred():
            return
        time.sleep(1)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s\n{tail()}")


def outage_tolerance_s(env: dict) -> tuple[float, dict[str, float]]:
    """How long an API-server outage a running task outlives with ``env``'s settings (seconds), and
    each limit: the task token is renewed only when less than a fifth of its lifetime is left
    (``[execution_api] jwt_expiration_time``); the supervisor kills its task after
    ``[workers] max_failed_heartbeats`` failed heartbeats, at least ``min_heartbeat_interval``
    apart; the scheduler fails a task that has not heartbeated for
    ``[scheduler] task_instance_heartbeat_timeout``."""
    def num(key: str, default: float) -> float:
        return float(env.get(key) or default)

    interval = num("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", 5)
    limits = {
        "token": max(0.2 * num("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", 600), 30) - interval,
        "failed_heartbeats": num("AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS", 3) * interval,
        "heartbeat_timeout": num("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", 300),
    }
    return min(limits.values()), limits


def ensure_imaging_pool(env: dict | None = None, log: Path | None = None, cwd: Path | None = None) -> int:
    """Create the ``casa_imaging`` pool, or resize it, to :func:`pool_size` slots in the database
    of the Airflow that ``env`` configures. Returns the slots."""
    env = dict(os.environ if env is None else env)
    slots, why = pool_size(env)
    print(f"pool {IMAGING_POOL}: {why}", file=sys.stderr)
    run_airflow(["pools", "set", IMAGING_POOL, str(slots), IMAGING_POOL_DESCRIPTION], env, log, cwd)
    return slots


def read_env_file(path: Path = DISTRIBUTED_ENV) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose's ``env_file`` reads them: blank lines and ``#`` comments
    skipped, values taken literally (the file uses no quotes and no ``${...}``)."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or value[:1] in ("'", '"') or "${" in value:
            raise ValueError(f"{path}:{n}: expected KEY=VALUE without quotes or ${{...}}: {line!r}")
        out[key.strip()] = value
    return out


def check_visibility_timeout(env: dict) -> int:
    """The broker's visibility timeout of a Celery deployment, in seconds, after checking that it
    outlasts an imaging task: Airflow acknowledges a Celery message only when its task ends, and the
    broker hands a message that is not acknowledged in time to another worker, which starts the
    task again while the first still runs it."""
    vt = int(env.get(VISIBILITY_TIMEOUT) or CELERY_DEFAULT_VISIBILITY_TIMEOUT_S)
    longest = longest_task_h(env) * 3600 + TIMEOUT_MARGIN_S
    if vt < longest:
        raise ValueError(f"{VISIBILITY_TIMEOUT}={vt} s is shorter than a task may take (the longer of "
                         f"CCIP_IMAGING_TIMEOUT_H={imaging_timeout_h(env):g} h and CCIP_STAGE_TIMEOUT_H="
                         f"{stage_timeout_h(env):g} h, + {TIMEOUT_MARGIN_S} s): the broker "
                         f"would start a running task a second time; raise it in docker/airflow.env")
    return vt


SWEEP_USER = "ccip_sweep"  # role "user" in SIMPLE_AUTH_MANAGER_USERS: DAG runs, nothing else


def ensure_sweep_user(passwords_file: Path, env: dict | None = None, log: Path | None = None) -> None:
    """The archive sweep's user and its connection, for a deployment whose SimpleAuthManager lists
    ``ccip_sweep:user``: its password (``$CCIP_SWEEP_PASSWORD``) merged into the users' passwords file
    (mode 600; the API server adds the missing users' generated passwords), and the connection
    ``ccip_airflow_api`` to ``$CCIP_SWEEP_API_URL`` (default ``http://airflow-apiserver:8080``) with it."""
    from urllib.parse import urlsplit

    from ccip_ops.settings import AIRFLOW_API_CONN_ID

    env = dict(os.environ if env is None else env)
    password = write_sweep_password(Path(passwords_file), env.get("CCIP_SWEEP_PASSWORD", ""))
    u = urlsplit(env.get("CCIP_SWEEP_API_URL") or "http://airflow-apiserver:8080")
    subprocess.run([airflow_bin(), "connections", "delete", AIRFLOW_API_CONN_ID], env=env,
                   capture_output=True)  # absent on a first start
    run_airflow(["connections", "add", AIRFLOW_API_CONN_ID, "--conn-type", "http", "--conn-host", u.hostname or "",
                 "--conn-port", str(u.port or 80), "--conn-schema", u.scheme, "--conn-login", SWEEP_USER,
                 "--conn-password", password, "--conn-description",
                 "this Airflow's REST API, for the archive sweep (user ccip_sweep, role user)"], env, log)


def write_sweep_password(p: Path, password: str) -> str:
    """Merge the sweep user's password into SimpleAuthManager's passwords file (mode 600)."""
    import json

    if len(password) < 16:
        raise ValueError("CCIP_SWEEP_PASSWORD is unset or shorter than 16 characters (docker/make-env.sh makes one)")
    current = json.loads(p.read_text()) if p.exists() and p.read_text().strip() else {}
    current[SWEEP_USER] = password
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(current) + "\n")
    os.replace(p.with_suffix(".tmp"), p)
    os.chmod(p, 0o600)
    return password


def main(argv: list[str]) -> int:
    if argv[1:2] == ["sweep-user"] and len(argv) == 3:
        ensure_sweep_user(Path(argv[2]))
        print(f"user {SWEEP_USER} and connection for the archive sweep set")
        return 0
    if argv[1:] != ["init"]:
        print(__doc__)
        return 2
    vt = check_visibility_timeout(os.environ)
    slots = ensure_imaging_pool()
    outage, limits = outage_tolerance_s(os.environ)
    print(f"visibility timeout {vt} s outlasts an imaging task; pool {IMAGING_POOL}: {slots} slots; running "
          f"tasks outlive an API-server outage of {outage:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in limits.items())})")
    if outage < 300:
        print("WARNING: a 5-minute API-server outage would kill running tasks: raise the smallest limit above",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
