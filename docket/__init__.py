"""Docket kernel: contracts, settings, errors, Temporal connection and database tables."""

__version__ = "0.1.0"
