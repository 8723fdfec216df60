"""The lakehouse: Spark session factory, Delta table schemas and idempotent writers."""
