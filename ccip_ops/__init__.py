"""ccip_ops: the science library of the VLASS Coarse Cube Imaging Pipeline.

Pure Python + CASA. Nothing in this package imports Airflow.
"""

__version__ = "0.1.0"
PIPELINE_VERSION = __version__
