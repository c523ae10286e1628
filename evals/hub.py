"""Whether the Hugging Face hub can be reached, decided once before lm-eval (and `datasets`) load.

Where it cannot, `datasets` would retry each download for half a minute or more before failing; with
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set it fails at once (and still uses datasets already cached).
These variables are read when `datasets` is imported, so `use_offline_mode_if_unreachable()` runs first.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
PROBE_TIMEOUT_S = 3.0

OFFLINE_HINT = (
    "lm-eval downloads this task's dataset from the Hugging Face hub, which cannot be reached from here. "
    "Offline, run the project's own tasks: --include_path evals/tasks --tasks oryx_offline"
)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """A TCP connection to the hub's host ($HF_ENDPOINT, else huggingface.co) opens within `timeout`."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def use_offline_mode_if_unreachable() -> bool:
    """Set the offline variables when neither is set and the hub does not answer; True when offline.
    A variable the user set (to anything) is left alone: their choice stands."""
    chosen = [os.environ[v] for v in OFFLINE_VARIABLES if v in os.environ]
    if chosen:
        return any(value.strip().lower() in ("1", "true", "yes", "on") for value in chosen)
    if hub_reachable():
        return False
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"
    return True
