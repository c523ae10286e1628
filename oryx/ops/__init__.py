"""Tensor operations: references (`naive.py` in each folder) and the fast paths beside them.

Ops know nothing of the model. Layout is fla's: [B, T, H, D] for sequences, [B, H, K, V] for states.
Each folder is a subpackage (`oryx.ops.mamba2`, `oryx.ops.gdn`, ...); its public function is exported
here under a name that does not hide it (`mamba2_recurrence`, not `mamba2`).
"""

from oryx.ops.attention import sparse_attention
from oryx.ops.backend import BACKENDS
from oryx.ops.conv import causal_conv1d
from oryx.ops.gdn import gdn_recurrence
from oryx.ops.mamba2 import mamba2_recurrence
from oryx.ops.norm import gated_rms_norm
from oryx.ops.rotary import rotary

__all__ = [
    "BACKENDS", "causal_conv1d", "gated_rms_norm", "gdn_recurrence", "mamba2_recurrence", "rotary", "sparse_attention",
]
