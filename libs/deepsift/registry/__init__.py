"""The detector lifecycle in MLflow: log, register, alias, resolve an alias to an exact version, load.

:class:`deepsift.registry.mlflow_models.DetectorRegistry` is the one facade; its errors are in
:mod:`deepsift.registry.errors`. Behind it: :mod:`~deepsift.registry.store` (which MLflow store),
:mod:`~deepsift.registry.tracking` (logging a version's run and logged model),
:mod:`~deepsift.registry.packaging` (a version's files as a pyfunc),
:mod:`~deepsift.registry.version_files` (a scorer from those files, without MLflow: in the pyfunc and on
executors the scan ships them to),
:mod:`~deepsift.registry.versions` (reading versions; contracts cached per process),
:mod:`~deepsift.registry.promotion` (the promotion rule) and :mod:`~deepsift.registry.checkpoints`
(checkpoint files and state-dict fit). :mod:`~deepsift.registry.mlflow_ui` serves MLflow's UI.
"""
