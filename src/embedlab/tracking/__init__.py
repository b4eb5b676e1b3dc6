"""Experiment tracking: W&B and CSV loggers, results files."""
