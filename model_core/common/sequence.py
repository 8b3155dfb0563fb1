"""Loss detection on numbered streams: every chunk of an audio stream carries `seq` and every segment of a
session a `segment_id`, both counting up from 0 without holes, so a consumer that sees a number jump knows exactly
which messages never arrived (dora drops the oldest messages of a full queue without telling anyone)."""

from __future__ import annotations


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
