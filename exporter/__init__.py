"""Prometheus exporter for Integrate.io (formerly Xplenty) ETL jobs."""

__version__ = "0.1.0"
