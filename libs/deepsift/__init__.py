"""deepsift: a batch scanner that sifts uploaded videos for deepfakes with Spark, Delta, PyTorch and MLflow."""

__version__ = "0.1.0"
