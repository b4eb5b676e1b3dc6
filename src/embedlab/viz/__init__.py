"""Plots of embeddings (t-SNE maps) and helpers to log them to experiment trackers."""
