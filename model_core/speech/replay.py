"""Fixed-size chunks from any stream of sample blocks, and a file replayed as a live stream would deliver it.

`FileReplay` holds the file's next chunk and says which chunks are due: in real time a chunk is due once the
stream clock has passed its last sample (as a microphone would have captured it); otherwise every chunk at once,
but never more than `window` chunks ahead of the consumer's acknowledgements (dora's queues drop messages past
10 x queue_size, so an unpaced fast replay of a long file loses audio).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, iter_audio_file


class Rechunker:
    """Cuts pushed blocks of samples into chunks of `size`; `rest()` is what is left (shorter, maybe empty)."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"chunk size must be positive, got {size}")
        self.size = size
        self.pending = np.zeros(0, np.float32)

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        self.pending = np.concatenate([self.pending, np.asarray(block, np.float32)])
        whole = self.pending.size // self.size * self.size
        chunks = [self.pending[i : i + self.size] for i in range(0, whole, self.size)]
        self.pending = self.pending[whole:]
        return chunks

    def rest(self) -> np.ndarray:
        rest, self.pending = self.pending, np.zeros(0, np.float32)
        return rest


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Fixed-size chunks from variable blocks; the last chunk may be shorter."""
    chunker = Rechunker(size)
    for block in blocks:
        yield from chunker.push(block)
    rest = chunker.rest()
    if rest.size:
        yield rest


class FileReplay:
    """An audio file (any format/rate/channels -> 16 kHz mono) as chunks of `chunk` samples, paced like a live
    stream when `realtime`. Opening reads the first chunk, so an unreadable or empty file raises the typed error
    (AudioUnreadable, EmptyAudio) here; one that breaks later raises it from `due()`."""

    def __init__(
        self,
        path: str | Path,
        chunk: int,
        realtime: bool = True,
        clock: Callable[[], float] = time.monotonic,
        window: int = 0,
        ack_timeout_s: float = 60.0,
    ) -> None:
        self.path, self.realtime, self.clock = Path(path), realtime, clock
        # flow control: at most `window` chunks handed out and not yet acknowledged (0: no limit). A consumer
        # silent for ack_timeout_s lets one more window through (its losses are then reported downstream).
        self.window, self.ack_timeout_s = window, ack_timeout_s
        self.handed, self.acked = 0, -1  # chunks handed out; the newest acknowledged chunk index (its seq)
        self.ack_timeouts = 0
        self._last_ack = clock()
        self._chunks = rechunk(iter_audio_file(path), chunk)
        self._next: np.ndarray | None = next(self._chunks, None)
        self._t0: float | None = None
        self.samples_out = 0  # samples handed out so far (the stream time of the next chunk's first sample)

    @property
    def done(self) -> bool:
        return self._next is None

    def start(self) -> None:
        """The stream clock starts now (the first call to `due()` starts it otherwise)."""
        self._t0 = self._last_ack = self.clock()

    def ack(self, seq: int) -> None:
        """The consumer has processed chunks up to `seq` (the chunk index)."""
        if seq > self.acked:
            self.acked, self._last_ack = seq, self.clock()

    def _window_full(self) -> bool:
        if not self.window or self.handed - (self.acked + 1) < self.window:
            return False
        if self.clock() - self._last_ack < self.ack_timeout_s:
            return True
        self.ack_timeouts += 1
        self.acked, self._last_ack = self.handed - 1, self.clock()  # as if all were acknowledged: one more window
        return False

    def due(self) -> Iterator[tuple[np.ndarray, bool]]:
        """The chunks due by now, each with whether it is the file's last."""
        if self._t0 is None:
            self.start()
        assert self._t0 is not None
        while self._next is not None:
            if self.realtime and self.clock() < self._t0 + (self.samples_out + self._next.size) / SAMPLE_RATE:
                return  # not captured yet in a live stream
            if self._window_full():
                return  # wait for the consumer's acknowledgement
            try:
                upcoming = next(self._chunks, None)
            except Exception:
                self._next = None  # a file that breaks mid-way ends there
                raise
            chunk, self._next = self._next, upcoming
            self.samples_out += chunk.size
            self.handed += 1
            yield chunk, upcoming is None
