"""What a training run shows while it runs: a live bar on a terminal, plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressReport:
    """A bar with loss, tokens/s and ETA (rank 0 only: `enabled=False` elsewhere).

    On a terminal the bar redraws every step; otherwise one line is printed every `every` steps, so a
    log file shows the same numbers.
    """

    def __init__(self, total: int, start: int, every: int, enabled: bool = True):
        self.total, self.start, self.every, self.enabled = total, start, every, enabled
        self.console = Console(file=sys.stderr)
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        if enabled and self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, loss="-", tps="-")
            self.bar.start()

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", tps=f"{tokens_per_s:,.0f}")
        elif step % self.every == 0 or step == self.total:
            done = step - self.start
            eta = (time.perf_counter() - self.t0) / max(done, 1) * (self.total - step)
            self.console.print(f"step {step}/{self.total}  loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  "
                               f"eta {_clock(eta)}", highlight=False, soft_wrap=True)

    def say(self, message: str) -> None:
        """A line above the bar (validation results, checkpoints)."""
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
