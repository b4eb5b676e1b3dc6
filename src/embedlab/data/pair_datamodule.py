"""Re-export for tasks/sts.py until it imports embedlab.data.datamodules (then delete this file)."""

from embedlab.data.datamodules import PairDataModule as PairDataModule
