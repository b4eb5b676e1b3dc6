"""Plots of embeddings (t-SNE maps) and helpers to log them to experiment trackers.

``python -m embedlab.viz <run output dir>`` draws the t-SNE map of any run (``viz.cli``).
"""
