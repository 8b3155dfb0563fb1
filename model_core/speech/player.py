"""Background playback through the default output device (sounddevice): utterances in order, never blocking."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable

import numpy as np


def _report(exc: Exception) -> None:
    print(f"[player] playback failed: {exc}", file=sys.stderr)


class Player:
    """Plays queued utterances one after the other in a daemon thread. Opening fails (any exception) when
    PortAudio is missing; a playback that fails (no speaker) goes to `on_error` and the next one still plays."""

    def __init__(self, on_error: Callable[[Exception], None] = _report) -> None:
        import sounddevice as sd

        self.sd, self.on_error = sd, on_error
        self.jobs: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        """Queue one utterance (mono float32); returns at once."""
        self.jobs.put((samples, sample_rate))

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.sd.play(job[0], job[1], blocking=True)
            except Exception as exc:  # noqa: BLE001 - a missing speaker must not stop the caller
                self.on_error(exc)

    def close(self, timeout_s: float = 120.0) -> None:
        """Let the queued utterances finish (at most `timeout_s`), then stop the thread."""
        self.jobs.put(None)
        self.thread.join(timeout=timeout_s)
