"""Fine-tune and evaluate an embedding model: python train.py [group=option ...]."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from embedlab.jobs import run_job, train  # heavy imports stay out of `--help`

    return run_job(cfg, train)  # the monitored metric: what Optuna / sweepers optimise


if __name__ == "__main__":
    main()
