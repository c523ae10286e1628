"""Whether the Hugging Face hub can be reached, decided once before lm-eval (and `datasets`) load.

Where it cannot, `datasets` would retry each download for half a minute or more before failing; with
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set it fails at once (and still uses datasets already cached).
These variables are read when `datasets` is imported, so `use_offline_mode_if_unreachable()` runs first.
"""

from __future__ import annotations

import os

from oryx.data.hub import OFFLINE_VARIABLES, offline, unreachable_reason

OFFLINE_HINT = (
    "lm-eval downloads this task's dataset from the Hugging Face hub, which cannot be reached from here. "
    "Offline, run the project's own tasks: --include_path evals/tasks --tasks oryx_offline"
)


def use_offline_mode_if_unreachable() -> bool:
    """Set the offline variables when neither is set and the hub does not answer; True when offline.
    A variable the user set (to anything) is left alone: their choice stands."""
    if any(v in os.environ for v in OFFLINE_VARIABLES):
        return offline()
    if unreachable_reason() is None:  # the project's one probe (oryx.data.hub), proxies honoured
        return False
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"
    return True
