"""The name a worker reports for the tasks it runs (Airflow's ``core.hostname_callable``).

Airflow records ``socket.getfqdn()`` as a task instance's hostname, so several Celery workers on
one machine all look the same in the task records. Point ``AIRFLOW__CORE__HOSTNAME_CALLABLE`` at
:func:`hostname` and give each worker ``CCIP_WORKER_NAME`` (the same name as its Celery ``-H``) to
tell them apart; without ``CCIP_WORKER_NAME`` it is the machine's FQDN, as Airflow's default.
No Airflow import here (ccip_ops never imports Airflow).
"""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("CCIP_WORKER_NAME") or socket.getfqdn()
