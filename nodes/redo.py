"""The vad's side of an asr restart: the segments that have no final yet are sent again once the restarted asr is
`ready` (dora loses what a killed node held and what is sent to it while it restarts), each at most
Redo.max_attempts times; a segment given up, or every open one when the asr failed for good, becomes one
SegmentDropped error with its ids, so each segment still leaves the graph exactly once. It also sends the vad's
`ack`s, which every final may release (sequence.AckGate)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from dora_funasr_nano.model_core.common.errors import SegmentDropped
from dora_funasr_nano.model_core.common.sequence import AckGate, Redo

from .contract import Key, Port, ack_message, audio_message, error_message


class SegmentRedo:
    def __init__(self, node: Any, gate: AckGate, sample_rate: int, enabled: bool) -> None:
        self.node, self.gate, self.sample_rate = node, gate, sample_rate
        self.enabled = enabled  # only a vad told to wait for finals (its `done*` inputs) keeps segments
        self.redo: Redo[tuple[np.ndarray, dict[str, Any]]] = Redo()
        self.failed = False  # the asr will not come back: segments are reported instead of sent
        self.acking = True

    def ack(self, acks: list[tuple[str, int]]) -> None:
        for session_id, seq in acks if self.acking else ():
            try:
                self.node.send_output(Port.ACK, *ack_message(session_id, seq))
            except Exception as exc:  # noqa: BLE001 - a graph without the `ack` output (live mic) needs none
                self.acking = False
                print(f"[vad] not sending acks: {exc}", file=sys.stderr)

    def send(self, session_id: str, segment_id: int, samples: np.ndarray, meta: dict[str, Any]) -> None:
        if self.failed:
            return self._drop(session_id, segment_id, "the asr failed and will not restart")
        self.node.send_output(Port.SEGMENT, *audio_message(samples, self.sample_rate, **meta))
        if self.enabled:
            self.redo.sent(session_id, segment_id, (samples, meta))
        self.gate.started(session_id)

    def done(self, session_id: str, segment_id: int) -> None:
        """A final downstream: releases the gate once per segment (a second final of a re-sent one does not)."""
        if not self.enabled or self.redo.finished(session_id, segment_id):
            self.ack(self.gate.finished(session_id))

    def restarted(self, node_id: str) -> None:
        if self.enabled and self.redo.open:
            print(f"[vad] {node_id} restarted: {len(self.redo.open)} segments to send again", file=sys.stderr)
        self.redo.restarted()

    def ready(self) -> None:
        again, given_up = self.redo.take_lost()
        for session_id, segment_id, (samples, meta), times in again:
            self.node.send_output(Port.SEGMENT, *audio_message(samples, self.sample_rate, **meta, **{Key.REDO: times}))
            self.redo.sent(session_id, segment_id, (samples, meta))
        for session_id, segment_id in given_up:
            self._drop(session_id, segment_id, f"lost with a restarting asr {self.redo.max_attempts} times")

    def give_up(self) -> None:
        """The asr failed for good: every open segment is reported, and so is every later one."""
        self.failed = True
        for session_id, segment_id in sorted(self.redo.open):
            self._drop(session_id, segment_id, "the asr failed and will not restart")
        self.redo.open.clear()

    def _drop(self, session_id: str, segment_id: int, why: str) -> None:
        error = SegmentDropped(f"segment {segment_id} of session {session_id}: {why}")
        self.node.send_output(Port.ERROR, *error_message(error, **{Key.SESSION_ID: session_id,
                                                                    Key.SEGMENT_ID: segment_id}))  # fmt: skip
        self.ack(self.gate.finished(session_id))
