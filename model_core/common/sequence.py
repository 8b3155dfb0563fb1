"""Loss detection on numbered streams: every chunk of an audio stream carries `seq` and every segment of a
session a `segment_id`, both counting up from 0 without holes, so a consumer that sees a number jump knows exactly
which messages never arrived (dora drops the oldest messages of a full queue without telling anyone)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class GapDetector:
    """The next number expected on each stream. `observe` returns the numbers skipped before this one."""

    def __init__(self) -> None:
        self.expected: dict[str, int] = {}
        self.missing: dict[str, int] = {}  # numbers lost so far, per stream

    def observe(self, stream: str, number: int) -> range:
        """range(0) for the next number in order, for a stream's first message (a consumer that starts or
        restarts mid-stream cannot know what came before) and for a number at or below one already seen (a
        producer that restarted, or a duplicate); otherwise the skipped numbers."""
        expected = self.expected.get(stream)
        self.expected[stream] = max(expected or 0, number + 1)
        if expected is None or number <= expected:
            return range(0)
        gap = range(expected, number)
        self.missing[stream] = self.missing.get(stream, 0) + len(gap)
        return gap

    def forget(self, stream: str) -> None:
        """The stream ended (eos): a new stream under the same name starts over."""
        self.expected.pop(stream, None)


class AckGate:
    """Flow control for a stream whose consumer emits work downstream (the VAD: audio chunks in, segments out).

    The consumer acknowledges each chunk it has processed (`received`), but holds acknowledgements back while
    `limit` or more of its own outputs are still unfinished downstream (`started` / `finished`), so a producer
    that waits for acknowledgements never gets more than its window ahead of the slowest stage. limit 0: every
    chunk is acknowledged at once (no downstream limit)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.in_flight: dict[str, int] = {}  # unfinished outputs per stream
        self.held: dict[str, int] = {}  # the newest acknowledgement held back, per stream

    def _open(self, stream: str) -> bool:
        return not self.limit or self.in_flight.get(stream, 0) < self.limit

    def received(self, stream: str, seq: int) -> list[tuple[str, int]]:
        """A chunk was processed: the acknowledgements to send now."""
        if self._open(stream):
            self.held.pop(stream, None)
            return [(stream, seq)]
        self.held[stream] = seq
        return []

    def started(self, stream: str) -> None:
        self.in_flight[stream] = self.in_flight.get(stream, 0) + 1

    def finished(self, stream: str) -> list[tuple[str, int]]:
        """An output has its final result (or error) downstream: acknowledgements released by it."""
        self.in_flight[stream] = max(0, self.in_flight.get(stream, 0) - 1)
        if stream in self.held and self._open(stream):
            return [(stream, self.held.pop(stream))]
        return []


class Redo(Generic[T]):
    """Outputs sent downstream that have no final yet, kept so that they can be sent again when the node that
    holds them restarts: dora loses whatever a killed node had received and not finished, and whatever is sent to
    it while it restarts. An output that was sent `max_attempts` times without a final is given up (a message
    that crashes its consumer every time must not restart it forever)."""

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts
        self.open: dict[tuple[str, int], tuple[T, int]] = {}  # (stream, number) -> (payload, times sent)
        self.lost = False  # the consumer restarted: every open output is lost until it is sent again

    def sent(self, stream: str, number: int, payload: T) -> None:
        attempts = self.open[(stream, number)][1] if (stream, number) in self.open else 0
        self.open[(stream, number)] = (payload, attempts + 1)

    def finished(self, stream: str, number: int) -> bool:
        """A final arrived: False if the output was not open (untracked, or a second final)."""
        return self.open.pop((stream, number), None) is not None

    def restarted(self) -> None:
        self.lost = True

    def take_lost(self) -> tuple[list[tuple[str, int, T, int]], list[tuple[str, int]]]:
        """Once the consumer is back: (to send again: stream, number, payload, times sent so far), (to give up)."""
        if not self.lost:
            return [], []
        self.lost = False
        again = [(s, n, p, a) for (s, n), (p, a) in sorted(self.open.items()) if a < self.max_attempts]
        given_up = [(s, n) for (s, n), (_, a) in sorted(self.open.items()) if a >= self.max_attempts]
        for key in given_up:
            del self.open[key]
        return again, given_up
