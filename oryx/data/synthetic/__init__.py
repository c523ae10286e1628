"""Synthetic retrieval tasks: seeded pydantic configs whose `generate()` returns a `SyntheticBatch`.

    from oryx.data.synthetic import MQARConfig, NIAHConfig, TASKS
    batch = MQARConfig(vocab_size=256, num_kv_pairs=8, input_seq_len=64, num_examples=100).generate()
    batch.input_ids, batch.labels, batch.roles        # [N, T] each; batch.role_names == MQARConfig.ROLES
    TASKS["niah"](context_len=[256, 512], depth=[0.0, 0.5, 1.0]).generate()
"""

from oryx.data.synthetic.base import IGNORE, SyntheticBatch, SyntheticConfig
from oryx.data.synthetic.mqar import MQARConfig
from oryx.data.synthetic.niah import NIAHConfig

#: Task name -> config class (the names `oryx data show` and the evaluation use).
TASKS: dict[str, type[SyntheticConfig]] = {"mqar": MQARConfig, "niah": NIAHConfig}

__all__ = ["IGNORE", "TASKS", "MQARConfig", "NIAHConfig", "SyntheticBatch", "SyntheticConfig"]
