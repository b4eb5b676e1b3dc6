"""Kept for tasks/model.py's import until it reads :func:`embedlab.encode.encoder.prefetch_poolings`."""

from embedlab.encode.encoder import prefetch_poolings as prefetch_poolings
