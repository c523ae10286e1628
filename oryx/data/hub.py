"""The Hugging Face hub: whether the user chose offline mode, and whether the hub answers.

One probe for the whole project (the `hf` corpus recipe and `oryx eval lm` use it): an HTTP HEAD of
$HF_ENDPOINT (default https://huggingface.co) through urllib, which honours the usual proxy variables;
any HTTP answer, an error status included, means the hub is reachable.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
PROBE_TIMEOUT_S = 3.0


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def offline() -> bool:
    """True when either offline variable is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers within `timeout`, else why it did not."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))
    return None
