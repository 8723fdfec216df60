"""Content Credentials (C2PA): read at ingest, stored beside every verdict."""
