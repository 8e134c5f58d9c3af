#!/usr/bin/env python3
"""A distributed Airflow on one machine: CeleryExecutor on PostgreSQL and Redis, every component a
separate process, for ``make distributed-test`` (tests/distributed/) and for trying the deployment
without containers.

What :class:`Cluster` starts, all on 127.0.0.1, on free ports, under one temporary directory:

- PostgreSQL (Debian's ``postgresql``): a private cluster made by ``initdb``, run as the ``postgres``
  user when we are root (the server refuses to run as root); the Airflow metadata DB and Celery's
  result backend;
- Redis (Debian's ``redis-server``): the Celery broker, no persistence;
- ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer``;
- N ``airflow celery worker`` processes (concurrency 1 each) with distinct Celery names
  (``-H worker1@host``) and distinct task hostnames (``core.hostname_callable`` reads
  ``CCIP_WORKER_NAME``) so the task records say which worker ran what; each its own log-server port.

Every component runs with the settings of ``docker/airflow.env``, the file the docker deployment
loads too, plus this cluster's own addresses, ports, paths, secrets and sizing
(:meth:`Cluster.airflow_env`); the ``casa_imaging`` pool is made as everywhere else
(:func:`scripts.airflow_setup.ensure_imaging_pool`).

Each process is the leader of its own process group; :meth:`Cluster.stop` stops every group it
started (SIGTERM, then SIGKILL; the process trees through ``psutil``) and the database server, and
removes the directory unless ``keep=True``. Secrets (Fernet key, JWT secret, API secret key) are
generated per cluster.

    python -m scripts.airflow_cluster up    start a cluster with two workers, print its address, wait for Ctrl-C, stop it
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from scripts.airflow_api import AirflowApi, admin_password
from scripts.airflow_setup import (ROOT, airflow_bin, check_visibility_timeout, ensure_imaging_pool, free_port,
                                   read_env_file, run_airflow, wait_for)

VENV_BIN = Path(sys.executable).parent


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, or where Debian puts it (/usr/lib/postgresql/<v>/bin)."""
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return cands[-1] if cands else None


def missing_binaries() -> list[str]:
    """What this machine lacks to run a cluster (empty when it can)."""
    missing = [n for n in ("initdb", "pg_ctl", "postgres") if not pg_bin(n)]
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("a 'postgres' user (PostgreSQL refuses to run as root)")
    return missing


class Cluster:
    def __init__(self, n_workers: int = 2, base: Path | None = None, keep: bool = False,
                 heartbeat_timeout: int = 20, imaging_slots: int = 2, extra_env: dict | None = None,
                 logs_to: Path | None = None):
        self.logs_to = logs_to  # where stop() copies the components' logs before removing ``base``
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="ccip-cluster-"))
        self.keep = keep
        self.n_workers = n_workers
        self.heartbeat_timeout = heartbeat_timeout
        self.imaging_slots = imaging_slots
        self.extra_env = extra_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.args: dict[str, tuple[list[str], dict | None]] = {}
        self.pg_started = False
        self.host = socket.gethostname()
        self.worker_names = [f"worker{i + 1}" for i in range(n_workers)]
        self.pg_port = self.redis_port = self.api_port = None
        self.env: dict[str, str] = {}
        self.logs, self.pgdata, self.airflow_home = (self.base / d for d in ("logs", "pgdata", "airflow"))

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout: float = 300):
        missing = missing_binaries()
        if missing:
            raise RuntimeError("cannot start a cluster, missing: " + ", ".join(missing))
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)  # the postgres user must reach its data directory
        self.logs.mkdir(exist_ok=True)
        self.airflow_home.mkdir(exist_ok=True)
        self._start_postgres()
        self._start_redis()
        self._configure()
        run_airflow(["db", "migrate"], self.env, self.logs / "db-migrate.log", self.base)
        ensure_imaging_pool(self.env, self.logs / "pool.log", self.base)
        self._spawn("api-server", ["api-server", "--port", str(self.api_port), "--host", "127.0.0.1",
                                   "--workers", "1"])
        for comp in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(comp, [comp])
        for name in self.worker_names:
            self.start_worker(name)
        wait_for(self._healthy, timeout, "Airflow api-server/scheduler/dag-processor/triggerer",
                 self.procs["api-server"], self.logs / "api-server.log")
        for name in self.worker_names:
            self.wait_worker(name, timeout)
        self.api().ensure_connection()  # for the archive sweep, as the local Airflow has it
        return self

    def stop(self):
        for name in reversed(list(self.procs)):
            self.kill_group(name, signal.SIGTERM, grace=20)
        if self.logs_to and self.logs.exists():
            shutil.copytree(self.logs, self.logs_to, dirs_exist_ok=True)
        if self.pg_started:
            self._pg(["pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "-t", "30", "stop"], check=False)
            self.pg_started = False
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- PostgreSQL and Redis --------------------------------------------------------------------
    def _pg(self, argv: list[str], check=True) -> subprocess.CompletedProcess:
        argv = [pg_bin(argv[0]) or argv[0]] + argv[1:]
        kw = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.base)}
        out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.base, **kw)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return out

    def _start_postgres(self):
        self.pg_port = free_port()
        self.pgdata.mkdir()
        sock = self.base / "pgsock"
        sock.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for d in (self.pgdata, sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chown(self.logs, pw.pw_uid, pw.pw_gid)
        self._pg(["initdb", "-D", str(self.pgdata), "-U", "airflow", "-A", "trust", "-E", "UTF8", "--no-sync",
                  "--locale=C"])
        opts = f"-h 127.0.0.1 -p {self.pg_port} -k {sock} -c fsync=off -c synchronous_commit=off -c max_connections=200"
        self._pg(["pg_ctl", "-D", str(self.pgdata), "-l", str(self.logs / "postgres.log"), "-o", opts, "-w", "-t", "60",
                  "start"])
        self.pg_started = True
        self._pg(["createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "airflow", "airflow"])

    def _start_redis(self):
        self.redis_port = free_port()
        (self.base / "redis").mkdir()
        log = self.logs / "redis.log"
        with open(log, "ab") as fh:
            self.procs["redis"] = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                 "--appendonly", "no", "--dir", str(self.base / "redis"), "--protected-mode", "yes"],
                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

        def pong():
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(pong, 30, "redis-server", self.procs["redis"], log)

    # -- Airflow ---------------------------------------------------------------------------------
    def _configure(self):
        self.api_port = free_port()
        self.env = self.airflow_env()

    def airflow_env(self) -> dict[str, str]:
        """The environment of every component: ``docker/airflow.env`` (the settings the docker
        deployment runs with), then what is this cluster's own: addresses, ports, paths, secrets,
        sizing, and the heartbeat timeout shortened so that a killed worker is noticed in tens of
        seconds (the deployment's default is 5 minutes)."""
        from cryptography.fernet import Fernet

        db = f"airflow@127.0.0.1:{self.pg_port}/airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(read_env_file())
        env.update({
            "PATH": str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": self.api_base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_base}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "3",
            "CCIP_IMAGING_SLOTS": str(self.imaging_slots),
        })
        env.update(self.extra_env)
        check_visibility_timeout(env)
        return env

    def _spawn(self, name: str, args: list[str], env: dict | None = None):
        self.args[name] = (args, env)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as fh:
            self.procs[name] = subprocess.Popen([airflow_bin(), *args], stdout=fh,
                                                stderr=subprocess.STDOUT, env=env or self.env, cwd=self.base,
                                                start_new_session=True)

    def start_worker(self, name: str):
        env = dict(self.env, CCIP_WORKER_NAME=name,
                   AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
        self._spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@{self.host}", "--concurrency", "1"], env)

    def wait_worker(self, name: str, timeout: float = 180):
        log = self.logs / f"{name}.log"
        wait_for(lambda: log.exists() and f"{name}@{self.host} ready" in log.read_text(errors="replace"),
                 timeout, f"celery worker {name}", self.procs[name], log)

    def _healthy(self) -> bool:
        return AirflowApi(self.api_base).healthy(("metadatabase", "scheduler", "dag_processor", "triggerer"))

    def api(self) -> AirflowApi:
        return AirflowApi(self.api_base, "admin", admin_password(self.airflow_home))

    def kill_group(self, name: str, sig=signal.SIGKILL, grace: float = 0) -> None:
        """Signal a component and everything it started, as a crashed host would lose them.

        That is its own process group *and* the process groups of its descendants: Airflow's
        task supervisor puts each task runner in a process group of its own, so signalling only
        the worker's group would leave the task (and its CASA) running, orphaned. SIGTERM first
        when ``grace`` > 0, SIGKILL for whatever is left."""
        p = self.procs.get(name)
        if p is None:
            return
        own = os.getpgid(0)
        groups = (_tree_pgids(p.pid) | {p.pid}) - {own}
        _signal_groups(groups, sig)
        t0 = time.time()
        while time.time() - t0 < grace and any(_group_alive(g) for g in groups):
            time.sleep(0.5)
        for _ in range(3):
            groups |= _tree_pgids(p.pid) - {own}
            left = [g for g in groups if _group_alive(g)]
            if not left:
                break
            _signal_groups(left, signal.SIGKILL)
            time.sleep(0.5)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def outage(self, name: str = "api-server") -> None:
        """Stop a component (SIGTERM, then SIGKILL), as a crashed or redeployed host would lose it."""
        self.kill_group(name, signal.SIGTERM, grace=10)

    def restart(self, name: str = "api-server", timeout: float = 180) -> None:
        """Start a stopped component again, as it was started (same port and settings)."""
        args, env = self.args[name]
        self._spawn(name, args, env)
        wait_for(self._healthy, timeout, f"{name} after its restart", self.procs[name], self.logs / f"{name}.log")

    def signal_tree(self, name: str, sig) -> set[int]:
        """Send ``sig`` to a component and every process group it started, nothing else: SIGSTOP
        freezes a worker with its tasks as a hung host or a network partition would (the scheduler
        stops hearing from them), SIGCONT thaws it. Returns the process groups signalled."""
        p = self.procs.get(name)
        if p is None:
            return set()
        groups = (_tree_pgids(p.pid) | {p.pid}) - {os.getpgid(0)}
        _signal_groups(groups, sig)
        return groups

    def alive(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and _group_alive(p.pid)


def _tree_pgids(root: int) -> set[int]:
    """Process groups of ``root``'s descendants."""
    try:
        kids = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {g for g in map(_pgid, (k.pid for k in kids)) if g is not None}


def _signal_groups(groups, sig) -> None:
    for g in groups:
        try:
            os.killpg(g, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _group_alive(pgid: int) -> bool:
    """A process of the group is still there (zombies count as gone)."""
    for p in psutil.process_iter(["status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and _pgid(p.pid) == pgid:
            return True
    return False


def main(argv):
    if len(argv) < 2 or argv[1] != "up":
        print(__doc__)
        return 2
    with Cluster(keep=True) as c:
        api = c.api()
        print(f"Airflow (CeleryExecutor, {c.n_workers} workers) at {c.api_base}  user admin  password {api.password}")
        print(f"state and logs in {c.base}; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
