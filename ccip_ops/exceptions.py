"""Why a step failed: one base error and its named causes.

Each cause says whether another try can help (``retryable``). The DAG maps them in one place
(``dags/vlass_se_cube.py``: a deterministic cause fails the task at once, without retries; a
transient one is retried with backoff); ``ccip run`` reports them the same way. An exception
that is not a :class:`CcipError` (an ``OSError`` from a full disk, a CASA ``RuntimeError``) is
treated as transient.
"""
from __future__ import annotations


class CcipError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retryable = False


class InputError(CcipError, ValueError):
    """Bad input (archive folder, parameter list, run parameter, tarball): names the input and the
    file; no retry can fix it."""


class NothingLeftError(CcipError):
    """A deterministic dead end: every spw group failed, no spw group left to image, nothing to
    analyse. Retrying gives the same answer."""


class FaultInjectedError(CcipError):
    """An operator's drill (run parameter ``fault_groups``): fails the first try of a group."""


class IncompleteProductError(CcipError):
    """A CASA task returned but what it should have written is missing or unreadable (a worker's
    disk or a killed process): another try may succeed."""

    retryable = True


class ResourceLimitError(CcipError):
    """The work does not fit the worker (memory, disk) as configured: an operator must change the
    parameters or the worker; a retry on the same worker fails the same way."""


def is_retryable(exc: BaseException) -> bool:
    """Whether another try of the step that raised ``exc`` can succeed."""
    if isinstance(exc, CcipError):
        return exc.retryable
    return True
