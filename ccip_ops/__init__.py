"""ccip_ops: the science library of the VLASS Coarse Cube Imaging Pipeline.

Pure Python + CASA. Nothing in this package imports Airflow.
"""

from importlib import metadata as _metadata

try:  # one version, the package's (pyproject.toml); ccip_ops.provenance adds the git commit
    __version__ = _metadata.version("ccip")
except _metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout on sys.path
    __version__ = "0.2.0"
PIPELINE_VERSION = __version__
