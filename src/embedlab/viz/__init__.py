"""Plots of embeddings (t-SNE maps, every study's figures) and helpers to log them to trackers.

``python -m embedlab.visualise <run output dir>`` draws the t-SNE map of any run.
"""
