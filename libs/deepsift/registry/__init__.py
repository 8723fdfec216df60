"""The detector lifecycle in MLflow: log, register, alias, resolve an alias to an exact version, load.

:class:`deepsift.registry.mlflow_models.DetectorRegistry` is the one facade; its errors are in
:mod:`deepsift.registry.errors`.
"""
