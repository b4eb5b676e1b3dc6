"""Every plot: t-SNE maps of embeddings, the sweep report's Pareto fronts, the studies' figures
(``python -m embedlab.visualise <run output dir>`` draws a run's t-SNE map)."""
