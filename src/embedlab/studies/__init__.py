"""The studies of the source material (out-of-vocabulary words, document similarity, distance
concentration per dimension, model size): plain functions on models and texts, built from plain
arguments (``studies.inputs``), drawn by ``embedlab.viz.plots``. ``experiments/<name>/``
scripts call them; no Hydra here."""
