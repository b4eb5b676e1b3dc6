"""One quick reachability probe for the hub and W&B: both clients retry an unreachable server for
long (hub ~25 s, W&B ~90 s); one short TCP connect says within seconds whether to try at all."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(True, "") when a TCP connection to ``url``'s host and port opens within ``timeout``."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"{url} cannot be reached ({exc.__class__.__name__}: {exc})"


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(reachable, reason) of the Hugging Face hub; here because models/ and data/ both ask."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False, "HF_HUB_OFFLINE is set"
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)
