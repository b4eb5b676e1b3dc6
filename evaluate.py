"""Evaluate an embedding model without training: python evaluate.py model=... data=..."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    from embedlab.jobs import evaluate, run_job

    return run_job(cfg, evaluate)


if __name__ == "__main__":
    main()
