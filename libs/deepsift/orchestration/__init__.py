"""Typed helpers behind the Airflow DAGs in ``dags/``.

The DAG files import only :mod:`deepsift.orchestration.defaults` (the DAG and task settings) and
:mod:`deepsift.orchestration.spark_jobs` (a Spark job's prepare and spark-submit tasks) when Airflow
parses them; every other module here is imported inside a task, at run time, so that parsing a DAG
never loads Spark, torch or MLflow and never reads a connection or the deepsift configuration. Of
the run-time helpers only :func:`deepsift.orchestration.submit.spark_master` depends on Airflow.
"""
