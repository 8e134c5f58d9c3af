"""The project's own Airflow tooling, importable (``from scripts import airflow_local``).

- :mod:`scripts.airflow_api`: the one client of Airflow's REST API (``/api/v2``), stdlib only;
  used by the local and the cluster drivers, the archive sweep DAG (inside its task), the tests
  and the benchmarks;
- :mod:`scripts.airflow_setup`: what every Airflow of the project is set up with (the
  ``casa_imaging`` pool, the distributed settings of ``docker/airflow.env``), however it runs;
- :mod:`scripts.airflow_local`: the embedded ``airflow standalone`` (``make airflow``, ``make demo``);
- :mod:`scripts.airflow_cluster`: CeleryExecutor on PostgreSQL and Redis on loopback
  (``make distributed-test``).

Importing the package imports none of them: the sweep's task needs only ``airflow_api``.
"""
