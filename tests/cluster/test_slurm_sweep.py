"""Sweeps beyond one process: launcher and Optuna configs, a sweep through SLURM.

The config checks are fast and run with the default suite. The runs call ``train.py`` in a
subprocess, as a user would: Optuna is ``slow``; the SLURM sweep is ``cluster`` and needs a
running SLURM (``bash slurm/setup_local_slurm.sh`` gives a one-node one). DDP on CPU without
SLURM is checked by ``tests/test_resume.py``'s DDP kill-and-resume run.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
LAUNCHERS = sorted(p.stem for p in (CONFIGS / "hydra" / "launcher").glob("*.yaml"))
METRIC = "test/lee/spearman_cosine"
# Lightning logs this once per rank when the process group forms: "MEMBER: <rank+1>/<world>".
MEMBER = re.compile(r"GLOBAL_RANK: (\d+), MEMBER: \d+/(\d+)")


def compose_train(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def hparams_search_override(name: str) -> str:
    """``hparams_search=x`` once train.yaml lists the group (``hparams_search: null``), else ``+``."""
    listed = "hparams_search:" in (CONFIGS / "train.yaml").read_text()
    return f"{'' if listed else '+'}hparams_search={name}"


def run_train(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """``python train.py <args>`` from the repo root; fails the test with the output's tail."""
    env = {**os.environ, "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"train.py {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def read_results(path: Path) -> dict:
    results = json.loads(path.read_text())
    value = results["metrics"][METRIC]
    assert math.isfinite(value), f"{path}: {METRIC}={value}"
    return results


def ranks_in(text: str) -> set[tuple[int, int]]:
    """(global rank, world size) pairs that Lightning logged."""
    return {(int(r), int(w)) for r, w in MEMBER.findall(text)}


def recorded_world_size(results: dict) -> int | None:
    """World size from results.json meta, when the runner records it."""
    dist = results["meta"].get("distributed") or {}
    return dist.get("world_size")


# --- configs (fast) ------------------------------------------------------------------------


def launcher_schema(target: str) -> type:
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    by_class = {
        "TolerantSlurmLauncher": SlurmQueueConf,
        "TolerantLocalLauncher": LocalQueueConf,
        "JoblibLauncher": JobLibLauncherConf,
    }
    return by_class[target.rsplit(".", 1)[-1]]


# Same-named files are merged into the plugin's schema; Hydra warns that this is deprecated.
@pytest.mark.filterwarnings("ignore:(?s).*ConfigStore schema with the same name:UserWarning")
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_config_matches_plugin_schema(launcher: str) -> None:
    """Every key is a field of the plugin's own config (a typo would reach sbatch silently)."""
    cfg = compose_train(f"hydra/launcher={launcher}", "trainer=ddp")
    node = cfg.hydra.launcher
    schema = launcher_schema(node._target_)
    unknown = set(node) - {f.name for f in fields(schema)}
    assert not unknown, f"{launcher}: not in {schema.__name__}: {sorted(unknown)}"
    resolved = OmegaConf.to_container(node, resolve=True)  # interpolations need the whole config
    OmegaConf.merge(OmegaConf.structured(schema), resolved)  # type-checks every value
    if schema.__name__ == "SlurmQueueConf":
        # Lightning under SLURM: one task per device, or it refuses to start.
        assert resolved["tasks_per_node"] == cfg.trainer.devices == 2
        assert resolved["partition"] is None  # the cluster's default unless overridden
        assert resolved["setup"], f"{launcher}: no setup lines"


def test_optuna_config_optimises_the_monitored_metric() -> None:
    cfg = compose_train(hparams_search_override("optuna"))
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper.direction == {"max": "maximize", "min": "minimize"}[cfg.monitor_mode]
    assert sweeper.n_trials == 20
    assert set(sweeper.params) == {"objective.lr", "data.batch_size", "pooling"}
    assert OmegaConf.select(sweeper, "storage.url", throw_on_resolution_failure=False) is not None
    flipped = compose_train(hparams_search_override("optuna"), "monitor_mode=min")
    assert flipped.hydra.sweeper.direction == "minimize"


# --- runs ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_optuna_search_runs_trials(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    sweep_dir = tmp_path / "sweep"
    run_train(
        hparams_search_override("optuna"), "hydra.sweeper.n_trials=2",
        "model=tiny_bert", "debug=fast", "logger=none", f"hydra.sweep.dir={sweep_dir}",
        timeout=300,
    )  # fmt: skip
    study = optuna.load_study(study_name="train", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(math.isfinite(t.value) for t in study.trials)
    assert len(list(sweep_dir.glob("*/results.json"))) == 2


@pytest.mark.cluster
@pytest.mark.usefixtures("slurm")
def test_sweep_through_slurm_runs_ddp_jobs(tmp_path: Path) -> None:
    """Two jobs, each an sbatch array task with 2 srun tasks = 2 DDP ranks on CPU."""
    sweep_dir = tmp_path / "sweep"
    run_train(
        "-m", "hydra/launcher=submitit_slurm_cpu",
        "model=tiny_bert", "pooling=mean,cls", "debug=fast", "logger=none",
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        f"hydra.sweep.dir={sweep_dir}",
        timeout=600,
    )  # fmt: skip
    jobs = sorted(p.parent for p in sweep_dir.glob("*/results.json"))
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1"], f"job folders: {jobs}"
    poolings = {read_results(j / "results.json")["meta"]["config"]["pooling"]["mode"] for j in jobs}
    assert poolings == {"mean", "cls"}

    # submitit keeps one folder per array task, with one <job>_<task>_log.{out,err} per srun task.
    task_dirs = sorted(p for p in (sweep_dir / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(task_dirs) == 2, f"submitit folders: {task_dirs}"
    for task_dir in task_dirs:
        logs = {p.name: p.read_text() for p in task_dir.glob("*_log.*")}
        assert {n for n in logs if n.endswith("_log.out")} == {
            f"{task_dir.name}_0_log.out",
            f"{task_dir.name}_1_log.out",
        }, f"{task_dir}: expected 2 srun tasks, found {sorted(logs)}"
        assert ranks_in("".join(logs.values())) == {(0, 2), (1, 2)}, f"{task_dir}: not 2 DDP ranks"
    for job in jobs:
        world = recorded_world_size(read_results(job / "results.json"))
        if world is not None:
            assert world == 2


@pytest.mark.filterwarnings("ignore:(?s).*ConfigStore schema with the same name:UserWarning")
def test_multi_node_launcher_follows_the_trainer() -> None:
    """trainer.num_nodes=2 x devices=4: sbatch asks for 2 nodes of 4 tasks (= GPUs) each, and submitit
    requeues a job that hits its time limit (the requeue_checkpoint callback saves it first)."""
    cfg = compose_train(
        "hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert cfg.trainer.num_nodes == 2 and launcher["max_num_timeout"] > 0
    assert cfg.callbacks.requeue_checkpoint.signal_name == "SIGUSR2"  # what submitit's --signal sends
    assert compose_train("hydra/launcher=submitit_slurm_cpu").hydra.launcher.nodes == 1
