"""Analysts' SQL: read-only statements and saved queries (``deepsift sql``), and the JDBC server
(``deepsift sql-server``). Both run under the read-only extension of :mod:`deepsift.lake.readonly`."""
