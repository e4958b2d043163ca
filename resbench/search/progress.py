"""The one-line progress display of a search: done/running/pruned/failed and the best so far."""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO


def progress_line(name: str, total: int, counts: Mapping[str, int], best: str,
                  epochs: Mapping[int, int] | None = None) -> str:
    """``[exp] 3/12 done | 1 running (#3 epoch 4) | ...``; ``epochs``: running trial number ->
    its last finished epoch."""
    running = f"{counts.get('running', 0)} running"
    if epochs:
        running += " (" + ", ".join(f"#{n} epoch {e}" for n, e in sorted(epochs.items())) + ")"
    parts = [f"{counts.get('done', 0)}/{total} done", running,
             f"{counts.get('pruned', 0)} pruned", f"{counts.get('failed', 0)} failed"]
    for outcome in ("diverged", "infeasible"):
        if counts.get(outcome):
            parts.append(f"{counts[outcome]} {outcome}")
    if counts.get("cached"):
        parts.append(f"{counts['cached']} cached")
    return f"[{name}] " + " | ".join(parts) + f" | {best}"


class Progress:
    """Rewrites one line on a terminal; elsewhere prints a line whenever the counts change."""

    def __init__(self, name: str, total: int, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self._stream = stream  # None: sys.stderr, looked up when writing (keeps this picklable)
        self.last = ""
        self.started = time.monotonic()

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @property
    def tty(self) -> bool:
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, counts: Mapping[str, int], best: str,
               epochs: Mapping[int, int] | None = None) -> None:
        line = progress_line(self.name, self.total, counts, best, epochs)
        if not self.enabled or line == self.last:
            return
        self.last = line
        elapsed = time.monotonic() - self.started
        text = f"{line} | {elapsed:.0f}s"
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    @contextlib.contextmanager
    def watching(self, poll: Callable[[], tuple], every: float = 1.0) -> Iterator[None]:
        """Update the line from ``poll()`` (``update``'s arguments) every ``every`` seconds in
        a background thread while the block runs, so a long trial shows its epochs."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.update(*poll())
                except Exception:  # noqa: BLE001 - a display must never end a search
                    pass

        thread = threading.Thread(target=loop, name="resbench-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
