"""Workflows: orchestration only, deterministic. Imports docket.contracts and activity names, nothing else."""
