"""Typed helpers behind the Airflow DAGs in ``dags/``.

The DAG files import only :mod:`deepsift.orchestration.defaults` when Airflow parses them; every
other module here is imported inside a task, at run time, so that parsing a DAG never loads Spark,
torch or MLflow and never reads a connection or the deepsift configuration. None of these modules
depends on Airflow except :func:`deepsift.orchestration.submit.spark_master`.
"""
