"""W&B through Lightning's WandbLogger, safe offline: mode ``auto`` goes online only with an
API key *and* a reachable server, else offline (``wandb sync`` later) instead of wandb's 90 s
of retries. Keys never reach the logged config."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from embedlab.net import PROBE_TIMEOUT_S, reachable

log = logging.getLogger(__name__)

Mode = Literal["auto", "online", "offline", "disabled"]


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:  # `wandb login` writes the key to ~/.netrc (machine api.wandb.ai)
        return "wandb" in Path(os.environ.get("NETRC", Path.home() / ".netrc")).read_text()
    except OSError:
        return False


def choose_mode(requested: Mode) -> Literal["online", "offline", "disabled"]:
    """Resolve ``auto`` (and a doomed ``online``) to what will actually work here."""
    env_mode = os.environ.get("WANDB_MODE")
    if requested == "auto" and env_mode in {"online", "offline", "disabled"}:
        requested = env_mode  # type: ignore[assignment]
    if requested in {"offline", "disabled"}:
        return requested  # type: ignore[return-value]
    if not _has_api_key():
        if requested == "online":
            log.warning(
                "W&B: logger.mode=online but no API key (WANDB_API_KEY or `wandb login`); logging offline."
            )
        return "offline"
    ok, reason = reachable(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"), PROBE_TIMEOUT_S)
    if not ok:
        log.warning("W&B: %s; logging offline instead. Sync later with `wandb sync <run dir>`.", reason)
        return "offline"
    return "online"


def make_wandb_logger(
    *,
    save_dir: str,
    project: str = "embedlab",
    tags: list[str] | None = None,
    mode: Mode = "auto",
    **run: Any,
):
    """A Lightning WandbLogger whose mode never blocks on an unreachable server; ``run`` holds
    ``name``, ``group``, ``job_type``, ``entity`` and any other ``wandb.init`` argument."""
    from lightning.pytorch.loggers import WandbLogger

    resolved = choose_mode(mode)
    log.info("W&B mode: %s (requested %s)", resolved, mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    offline, tags = resolved == "offline", list(tags or [])
    run = {"project": project, "job_type": "train", **run}
    logger = WandbLogger(save_dir=save_dir, tags=tags, offline=offline, mode=resolved, **run)
    # Lightning always passes anonymous=None, which wandb >= 0.19 answers with a deprecation warning
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb(loggers: list, exit_code: int) -> None:
    """Finish every W&B run that was started, recording the job's exit code."""
    for lg in loggers:
        run = getattr(lg, "_experiment", None)
        if run is not None and hasattr(run, "finish"):
            try:
                run.finish(exit_code=exit_code)
            except Exception as exc:  # never mask the job's own error
                log.warning("W&B finish failed: %s", exc)
