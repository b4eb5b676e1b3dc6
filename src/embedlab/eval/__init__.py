"""Evaluators as pure functions over embeddings."""
