"""Composition root: builds clients and activities once and runs the Temporal worker."""
