"""The stage ledger of a reproduction: `DIR/ledger.json`, rewritten atomically after every stage.

A stage is recorded only after its outputs are complete (a trained model's summary, an evaluation's
MLflow run id), so a reproduction killed at any moment reruns from the first unfinished stage; the
trainer itself resumes an unfinished training from its newest checkpoint.

    {"preset": "smoke", "stages": {"train/oryx-mamba2-mqar": {"seconds": 41.2, "outputs": {...}}, ...}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oryx.errors import OryxError
from oryx.fileio import read_json_object, write_atomic

LEDGER_FILE = "ledger.json"


class Ledger:
    """Finished stages of one output directory, keyed by stage name."""

    def __init__(self, out_dir: Path, preset: str):
        self.path = Path(out_dir) / LEDGER_FILE
        self.preset = preset
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        data = read_json_object(self.path, hint="; delete it to start this reproduction over")
        if data.get("preset") != self.preset:
            raise OryxError(f"{self.path.parent} holds a reproduction of preset {data.get('preset')!r}, not "
                            f"{self.preset!r}; choose another --out")
        self.stages = data.get("stages", {})

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def outputs(self, stage: str) -> dict[str, Any]:
        return self.stages[stage]["outputs"]

    def record(self, stage: str, outputs: dict[str, Any], seconds: float) -> None:
        """Mark `stage` finished with its outputs (JSON values) and write the ledger atomically."""
        self.stages[stage] = {"seconds": round(seconds, 1), "outputs": outputs}
        text = json.dumps({"preset": self.preset, "stages": self.stages}, indent=2) + "\n"
        write_atomic(self.path, lambda p: p.write_text(text))
