"""Offline CASA data configuration: the only module that knows about ``CASASITECONFIG``.

casatools reads its configuration once, at import time. This module writes a site config
file that points ``measurespath``/``datapath`` at the ``casadata`` package with every
auto-update switched off, keeps CASA's cache and default log inside the project, and sets
``CASASITECONFIG`` before casatools is imported. Call :func:`tools` / :func:`tasks` instead
of importing casatools/casatasks directly so that the order is always right.

Where things go:
- ``$CCIP_CASA_DIR`` (default ``<project>/.casa``): ``casasiteconfig.py``, ``cache/``, ``logs/``, and
  ``matplotlib/`` (``MPLCONFIGDIR``, unless already set: casatasks imports matplotlib).

Threads: ``$CCIP_CASA_THREADS`` (a positive integer) caps the OpenMP threads of each CASA process
(``OMP_NUM_THREADS``, read once when casatools loads; an ``OMP_NUM_THREADS`` already set wins).
Unset, CASA uses every core. A worker that runs k imaging tasks at once on c cores should set it to
c // k (``scripts/airflow_local.py`` does): tclean gains little from its threads (bench/README) and k
processes each using every core oversubscribe the machine.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def casa_dir() -> Path:
    return Path(os.environ.get("CCIP_CASA_DIR", PROJECT_ROOT / ".casa")).resolve()


def config_path() -> Path:
    return casa_dir() / "casasiteconfig.py"


def _config_text() -> str:
    import casadata  # data package only; importing it does not start CASA

    data = str(Path(casadata.datapath).resolve())
    d = casa_dir()
    return (
        "# Written by ccip_ops.casa_env: offline CASA data from the casadata package.\n"
        f"measurespath = {data!r}\n"
        f"datapath = [{data!r}]\n"
        "measures_auto_update = False\n"
        "data_auto_update = False\n"
        "skipnetworkcheck = True\n"
        f"cachedir = {str(d / 'cache')!r}\n"
        f"logfile = {str(d / 'logs' / 'casa-default.log')!r}\n"
        "nologger = True\n"
        "nogui = True\n"
        "agg = True\n"
        "casaconfig_verbose = 0\n"
    )


def write_config() -> Path:
    """Write (idempotently) the site config file and return its path."""
    d = casa_dir()
    for sub in ("cache", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    path = config_path()
    text = _config_text()
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def ensure() -> Path:
    """Make sure casatools will load (or has loaded) the offline configuration."""
    path = write_config()
    current = os.environ.get("CASASITECONFIG")
    if "casatools" in sys.modules and current != str(path):
        raise RuntimeError(
            "casatools was imported before ccip_ops.casa_env configured it "
            f"(CASASITECONFIG={current!r}); import CASA through ccip_ops.casa_env.tools()"
        )
    os.environ["CASASITECONFIG"] = str(path)
    threads = casa_threads()
    if threads and "casatools" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    # casatasks imports matplotlib, which would write its cache under ~/.cache and ~/.config
    os.environ.setdefault("MPLCONFIGDIR", str(casa_dir() / "matplotlib"))
    return path


def casa_threads(env=None) -> int | None:
    """``$CCIP_CASA_THREADS`` (of ``env``, default this process's) as a positive integer, or None
    when unset or empty; anything else is refused, naming the variable."""
    from .settings import positive_int

    return positive_int("CCIP_CASA_THREADS", "OpenMP threads per CASA process", env)


def tools():
    """Return the configured ``casatools`` module."""
    ensure()
    return importlib.import_module("casatools")


class _Tasks:
    """``casatasks`` one task at a time: ``tasks().imdev`` imports ``casatasks.imdev`` only.

    ``import casatasks`` imports all ~130 tasks, scipy and matplotlib (1.7 s of every task process's
    start on an idle 2-core machine, bench/orchestration.py); a stage uses one to three tasks (~0.01 s
    each). Unless the full package is already imported (or ``CCIP_CASATASKS_FULL`` is set), the
    ``casatasks`` package is set up as its ``__init__`` would (``casalog`` on the configured log file,
    global; ``version``), without importing the tasks, and each task is imported when first used; a
    ``from casatasks import <task>`` elsewhere gets the task too (the package's ``__getattr__``)."""

    def __getattr__(self, name: str):
        return task(name)


_TASKS = _Tasks()


def _casatasks_package():
    mod = sys.modules.get("casatasks")
    if mod is not None:
        return mod
    if os.environ.get("CCIP_CASATASKS_FULL"):
        return importlib.import_module("casatasks")
    import types
    from importlib.util import find_spec

    import casatools
    from casaconfig import config

    spec = find_spec("casatasks")
    mod = types.ModuleType("casatasks")
    mod.__file__, mod.__spec__, mod.__path__ = spec.origin, spec, list(spec.submodule_search_locations)
    mod.__package__ = "casatasks"
    mod.casalog = casatools.logsink(config.logfile)
    mod.casalog.setglobal(True)
    from importlib.metadata import version as dist_version

    vs = dist_version("casatasks")
    mod.version = lambda: [int(x) for x in vs.split(".")[:4] if x.isdigit()]
    mod.version_string = lambda: vs
    mod.__getattr__ = task
    sys.modules["casatasks"] = mod
    return mod


def task(name: str):
    """One CASA task (``casatasks.<name>``), importing only that task's module."""
    ensure()
    pkg = _casatasks_package()
    value = pkg.__dict__.get(name)
    if value is not None and not isinstance(value, type(sys)):
        return value
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        sub = importlib.import_module(f"casatasks.{name}")
    except ModuleNotFoundError as e:
        raise AttributeError(f"casatasks has no task {name!r}") from e
    fn = getattr(sub, name, sub)
    setattr(pkg, name, fn)
    return fn


def tasks():
    """The configured ``casatasks``, each task imported when first used (:class:`_Tasks`)."""
    ensure()
    return _TASKS


def set_log(path: str | os.PathLike) -> None:
    """Send the CASA log of this process to ``path`` (one task, one CASA log file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tasks().casalog.setlogfile(str(p))


def versions() -> dict:
    ct = tools()
    out = {"casatools": ct.version_string()}
    try:
        out["casatasks"] = tasks().version_string()
    except Exception:  # pragma: no cover - casatasks always present in our installs
        pass
    return out


if __name__ == "__main__":  # `python -m ccip_ops.casa_env` writes the config and checks it
    p = ensure()
    print(f"CASA site config: {p}")
    ct = tools()
    me = ct.measures()
    obs = me.observatory("EVLA")
    assert obs["refer"], "EVLA position not found in the offline measures data"
    print(f"casatools {ct.version_string()} with offline data: OK")
