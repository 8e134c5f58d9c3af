"""Faults under operation that are settings: the casa_imaging pool never takes every worker slot,
running tasks outlive a 5-minute API-server outage with docker/airflow.env, the broker never
re-delivers a running imaging task, and every task of the DAGs has an execution timeout."""
from __future__ import annotations

import pytest

from scripts import airflow_setup
from scripts.airflow_setup import DISTRIBUTED_ENV, outage_tolerance_s, pool_size, read_env_file

SHARED = read_env_file(DISTRIBUTED_ENV)


@pytest.mark.parametrize("env, slots", [
    ({"CCIP_IMAGING_SLOTS": "4", "CCIP_WORKER_SLOTS": "4"}, 3),  # all slots asked: one kept free
    ({"CCIP_IMAGING_SLOTS": "4", "CCIP_WORKER_SLOTS": "8"}, 4),
    ({"CCIP_IMAGING_SLOTS": "8", "CCIP_WORKER_SLOTS": "8", "CCIP_RESERVED_SLOTS": "3"}, 5),
    ({"CCIP_IMAGING_SLOTS": "40", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, 31),  # parallelism 32
    ({"CCIP_IMAGING_SLOTS": "4", "AIRFLOW__CORE__PARALLELISM": "4"}, 3),
    ({"CCIP_IMAGING_SLOTS": "2", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, 2),  # slots unknown: as asked
])
def test_the_imaging_pool_leaves_worker_slots_to_other_tasks(env, slots):
    got, why = pool_size(env)
    assert got == slots, why
    if "CCIP_WORKER_SLOTS" not in env and "Celery" in env.get("AIRFLOW__CORE__EXECUTOR", ""):
        assert "set CCIP_WORKER_SLOTS" in why


@pytest.mark.parametrize("env", [{"CCIP_IMAGING_SLOTS": "1", "CCIP_WORKER_SLOTS": "1"},
                                 {"CCIP_WORKER_SLOTS": "2", "CCIP_RESERVED_SLOTS": "2"}])
def test_too_few_worker_slots_are_refused(env):
    with pytest.raises(ValueError, match="leave none for other tasks"):
        pool_size(env)


def test_the_pool_command_gets_the_capped_size(tmp_path, monkeypatch):
    fake = tmp_path / "airflow"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'argv'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(airflow_setup, "airflow_bin", lambda: str(fake))
    assert airflow_setup.ensure_imaging_pool({"CCIP_IMAGING_SLOTS": "6", "CCIP_WORKER_SLOTS": "6"}) == 5
    assert " 5 " in (tmp_path / "argv").read_text()


def test_running_tasks_outlive_a_five_minute_api_outage():
    defaults, limits = outage_tolerance_s({})
    assert defaults < 60, limits  # Airflow's defaults: three failed heartbeats, ~15 s
    deployed, limits = outage_tolerance_s({**SHARED, "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "900"})
    assert deployed >= 300 + 60, limits
    assert limits["token"] >= 600 and limits["failed_heartbeats"] >= 600
    # the scheduler's own heartbeat timeout is the deployment's (docker-compose.yml, default 900 s)
    compose = (DISTRIBUTED_ENV.parent / "docker-compose.yml").read_text()
    assert "TASK_INSTANCE_HEARTBEAT_TIMEOUT: ${CCIP_HEARTBEAT_TIMEOUT_S:-900}" in compose


def test_a_queued_task_waits_longer_than_a_stage_takes():
    assert float(SHARED["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"]) >= 6 * 3600
