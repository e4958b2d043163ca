"""Suite progress: two tqdm bars (suite, current trial) on a terminal, plain log lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from resbench.store import TrialRecord

MODES = ("auto", "bar", "log", "none")


class LogProgress:
    """One line per epoch and per finished trial, for logs and pipes."""

    def __init__(self, total: int, done: int, stream: TextIO | None = None) -> None:
        self.total, self.index = total, done
        self.stream = stream or sys.stdout
        self.label, self.epochs, self.start = "", 0, 0.0
        if done:
            self._print(f"{done} of {total} trials already finished; skipping them")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _prefix(self) -> str:
        width = len(str(self.total))
        return f"[{self.index + 1:>{width}}/{self.total}] {self.label}"

    def trial_start(self, label: str, epochs: int) -> None:
        self.label, self.epochs, self.start = label, epochs, time.perf_counter()

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        self._print(f"{self._prefix()} epoch {epoch}/{self.epochs}: "
                    f"train_loss {metrics['train_loss']:.4f} train_acc {metrics['train_acc']:.3f} "
                    f"val_acc {metrics['val_acc']:.3f} ({metrics['epoch_time_s']:.1f}s, "
                    f"{metrics['images_per_s']:.0f} img/s)")
        return False

    def trial_end(self, record: TrialRecord) -> None:
        reason = f": {record.reason}" if record.reason else ""
        self._print(f"{self._prefix()} {record.status} in "
                    f"{time.perf_counter() - self.start:.1f}s{reason}")
        self.index += 1

    def close(self) -> None:
        pass


class BarProgress:
    """A suite bar over trials and a trial bar over epochs (tqdm)."""

    def __init__(self, total: int, done: int) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.suite = tqdm(total=total, initial=done, desc="suite", unit="trial", position=0)
        self.trial = None

    def trial_start(self, label: str, epochs: int) -> None:
        self.trial = self._tqdm(total=epochs, desc=label, unit="epoch", position=1, leave=False)

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        if self.trial is not None:
            self.trial.set_postfix(loss=f"{metrics['train_loss']:.3f}",
                                   val_acc=f"{metrics['val_acc']:.3f}")
            self.trial.update(1)
        return False

    def trial_end(self, record: TrialRecord) -> None:
        if self.trial is not None:
            self.trial.close()
            self.trial = None
        if record.status != "completed":
            self.suite.write(f"{record.spec_name} seed={record.seed}: {record.status}"
                             f"{': ' + record.reason if record.reason else ''}")
        self.suite.update(1)

    def close(self) -> None:
        if self.trial is not None:
            self.trial.close()
        self.suite.close()


class NoProgress:
    """Silence (library use and tests)."""

    def trial_start(self, label: str, epochs: int) -> None:
        pass

    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> bool:
        return False

    def trial_end(self, record: TrialRecord) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(mode: str, *, total: int, done: int) -> LogProgress | BarProgress | NoProgress:
    """``auto`` → bars when stderr is a terminal, else log lines; ``bar``, ``log``, ``none``."""
    if mode not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return BarProgress(total, done)
    if mode == "log":
        return LogProgress(total, done)
    return NoProgress()
