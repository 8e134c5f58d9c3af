"""Group workers start in an Airflow task process: its main script (the ``airflow`` command) must
not be run again in them (it needs Airflow's database settings, which a task process lacks)."""
import sys

from ccip_ops import groupworkers


def test_workers_do_not_run_the_parents_main_script(tmp_path, monkeypatch):
    script = tmp_path / "airflow_like_main.py"
    script.write_text("raise RuntimeError('the main script ran again in a group worker')\n")
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__file__", str(script), raising=False)
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    out = groupworkers.parallel_map(divmod, [(7, 2), (9, 4), (5, 5)], workers=2)
    assert out == [(True, (3, 1)), (True, (2, 1)), (True, (1, 0))]
    assert main.__file__ == str(script)  # restored after the workers started


def test_workers_start_in_a_daemonic_process_as_a_celery_task_is():
    """A Celery worker's pool process is daemonic for multiprocessing; its tasks must still start
    group workers (Dec 6: every parallel fan-in task failed there with "daemonic processes are not
    allowed to have children", then "Pickling an AuthenticationString object is disallowed"), and
    both are restored afterwards."""
    import multiprocessing

    class BilliardKey(bytes):  # billiard's AuthenticationString: refuses pickling outside its own spawn
        def __reduce__(self):
            raise TypeError("Pickling an AuthenticationString object is disallowed for security reasons")

    cfg = multiprocessing.current_process()._config
    before, key = cfg.get("daemon"), cfg["authkey"]
    cfg["daemon"], cfg["authkey"] = True, BilliardKey(bytes(key))
    try:
        out = groupworkers.parallel_map(divmod, [(7, 2), (9, 4)], workers=2)
        assert cfg["daemon"] is True and type(cfg["authkey"]) is BilliardKey
    finally:
        cfg["authkey"] = key
        if before is None:
            cfg.pop("daemon", None)
        else:
            cfg["daemon"] = before
    assert out == [(True, (3, 1)), (True, (2, 1))]
