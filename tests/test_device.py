"""One device rule for every command (oryx.device)."""

from __future__ import annotations

import pytest

from oryx import OryxError


@pytest.mark.parametrize(
    ("choice", "expect"),
    [(None, "cpu"), ("auto", "cpu"), ("cpu", "cpu"), ("cuda", "CUDA is not available"), ("cuda:1", "CUDA is not available"),
     ("tpu", "unknown device 'tpu'")],
)
def test_one_device_rule_for_every_command(choice, expect):
    """oryx.device.pick_device (training, evaluation, generation): on this CPU-only machine."""
    import torch

    from oryx.device import pick_device

    if torch.cuda.is_available():
        pytest.skip("the expectations are those of a machine without CUDA")
    if expect == "cpu":
        assert pick_device(choice) == torch.device("cpu") == pick_device(choice, local_rank=0)
    else:
        with pytest.raises(OryxError, match=expect):
            pick_device(choice)
