"""Encode a retrieval corpus into the embedding cache, in shards (see embedlab.tasks.encode_corpus):

python encode_corpus.py data=scifact model=minilm shard=$SLURM_ARRAY_TASK_ID n_shards=4
python encode_corpus.py data=scifact model=minilm n_shards=4 --merge
torchrun --nproc-per-node 4 encode_corpus.py data=scifact model=minilm
"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="encode_corpus")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from embedlab.jobs import encode_corpus_job, exit_on_user_error  # heavy imports stay out of `--help`

    try:
        encode_corpus_job(cfg, list(HydraConfig.get().overrides.task))
    except Exception as exc:  # a known user error: one message and its exit code, no traceback
        exit_on_user_error(exc)
        raise


if __name__ == "__main__":
    # `--merge` reads better in a job script than merge=true; Hydra only takes key=value
    sys.argv = ["merge=true" if a == "--merge" else a for a in sys.argv]
    main()
