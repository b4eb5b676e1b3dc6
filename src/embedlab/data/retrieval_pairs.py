"""Re-export for tasks/retrieval.py until it imports embedlab.data.datamodules (then delete this file)."""

from embedlab.data.datamodules import (  # noqa: F401
    RankingDataModule,
    mine_negatives,
    ranking_examples,
    split_queries,
)
