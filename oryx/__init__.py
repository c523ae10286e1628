"""Oryx: a language model that switches between softmax attention and a linear recurrence along the
token sequence, with most parameters shared by both modes.

    from oryx import OryxConfig, OryxForCausalLM, presets, routing
    model = OryxForCausalLM(presets.get("oryx-mamba2-tiny"))
"""

from oryx import presets, routing
from oryx.errors import CheckpointError, OryxError
from oryx.model import OryxCache, OryxConfig, OryxForCausalLM, OryxOutput, count_parameters

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "OryxCache",
    "OryxConfig",
    "OryxError",
    "OryxForCausalLM",
    "OryxOutput",
    "count_parameters",
    "presets",
    "routing",
]
