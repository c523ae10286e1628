"""The Oryx model and its baselines (one code path; the config's mixer lists say which)."""

from oryx.model.cache import LayerCache, OryxCache
from oryx.model.config import OryxConfig
from oryx.model.modeling import OryxForCausalLM, OryxOutput
from oryx.model.params import count_parameters, state_bytes

__all__ = ["LayerCache", "OryxCache", "OryxConfig", "OryxForCausalLM", "OryxOutput", "count_parameters", "state_bytes"]
