"""vad: streaming speech segmentation with Silero VAD (model_core.speech.vad has the segmenter). Input `audio`
(chunks, any rate). Outputs `segment` (16 kHz float32 speech with session_id, segment_id, start_s, end_s,
captured_at = wall clock of its last sample), `error` (AudioDropped for a gap in the chunks' `seq`) and `ack`
(chunks processed up to `seq`: the source's flow control; held while DFN_VAD_MAX_SEGMENTS_IN_FLIGHT segments have
no final on the `done*` inputs, the asr's text and error). An eos chunk flushes its session's trailing speech. When
the asr restarts, its segments without a final are sent again on its next `ready` (nodes/redo.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from dora_funasr_nano.model_core.common.errors import AudioDropped, FunAsrNanoError, InvalidAudio, ModelNotLoaded
from dora_funasr_nano.model_core.common.sequence import AckGate, GapDetector
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE, count_nonfinite
from dora_funasr_nano.model_core.speech.vad import Segment, SegmenterConfig, SileroVad, SpeechSegmenter

from .config import load_config
from .contract import Key, Port, error_message, now, read_audio
from .events import CLOSED, FAILED, RESTARTED, input_events
from .redo import SegmentRedo


@dataclass
class VadConfig(SegmenterConfig):
    """Silero VAD segmenter (thresholds are speech probabilities, times in seconds)."""

    PREFIX: ClassVar[str] = "DFN_VAD_"
    ADDED: ClassVar[tuple[str, ...]] = ("max_segments_in_flight",)

    max_segments_in_flight: int = 0  # hold `ack` while this many segments wait for their final; 0 = no limit


class _Session:
    def __init__(self, segmenter: SpeechSegmenter) -> None:
        self.segmenter = segmenter
        self.next_id = 0
        self.position = 0  # 16 kHz samples received
        self.captured_at = 0.0  # wall clock of the last received sample


class VadNode:
    def __init__(self, node: Any, cfg: VadConfig) -> None:
        self.node, self.cfg = node, cfg
        self.sessions: dict[str, _Session] = {}
        self.gaps, self.gate = GapDetector(), AckGate(cfg.max_segments_in_flight)
        self.redo = SegmentRedo(node, self.gate, SAMPLE_RATE, enabled=cfg.max_segments_in_flight > 0)
        self.failed: set[str] = set()  # streams whose VAD model could not load (reported once)

    def _session(self, session_id: str) -> _Session:
        if session_id not in self.sessions:
            seg_cfg = SegmenterConfig(**{f.name: getattr(self.cfg, f.name) for f in fields(SegmenterConfig)})
            self.sessions[session_id] = _Session(SpeechSegmenter(SileroVad(), seg_cfg))
        return self.sessions[session_id]

    def on_audio(self, value: Any, metadata: dict[str, Any]) -> None:
        session_id = str(metadata.get(Key.SESSION_ID, "default"))
        seq = metadata.get(Key.SEQ)
        if isinstance(seq, int) and (lost := self.gaps.observe(session_id, seq)):
            ids = {Key.SESSION_ID: session_id, Key.SEQ: lost.start, Key.COUNT: len(lost)}
            error = AudioDropped(f"{len(lost)} audio chunks (seq {lost.start}-{lost.stop - 1}) never arrived")
            self.node.send_output(Port.ERROR, *error_message(error, **ids))
        try:  # one error per bad chunk; a VAD model that cannot load, once per stream (the stream is still acked)
            if session_id in self.failed:
                return self._processed(session_id, seq, metadata)
            samples, state = read_audio(value, metadata), self._session(session_id)
            captured_at = float(metadata.get(Key.CAPTURED_AT, 0.0))
        except (FunAsrNanoError, TypeError, ValueError) as exc:
            exc = exc if isinstance(exc, FunAsrNanoError) else InvalidAudio(f"bad captured_at: {exc}")
            self.node.send_output(Port.ERROR, *error_message(exc, **{Key.SESSION_ID: session_id, Key.SEQ: seq}))
            self.failed |= {session_id} if isinstance(exc, ModelNotLoaded) else set()
            return self._processed(session_id, seq, metadata)
        state.position += samples.size
        state.captured_at = captured_at
        for seg in state.segmenter.push(samples):
            self._emit(session_id, state, seg)
        self._processed(session_id, seq, metadata)

    def _processed(self, session_id: str, seq: Any, metadata: dict[str, Any]) -> None:
        """Every chunk, readable or not: its eos ends the stream, its ack goes through the gate."""
        if metadata.get(Key.EOS):
            self.flush(session_id)
            self.gaps.forget(session_id)
        if isinstance(seq, int):
            self.redo.ack(self.gate.received(session_id, seq))

    def on_done(self, metadata: dict[str, Any]) -> None:  # a segment has its final downstream
        if metadata.get(Key.FIN, True) and isinstance(segment_id := metadata.get(Key.SEGMENT_ID), int):
            self.redo.done(str(metadata.get(Key.SESSION_ID, "default")), segment_id)

    def flush(self, session_id: str) -> None:
        state = self.sessions.pop(session_id, None)
        if state is None:
            return
        for seg in state.segmenter.flush():
            self._emit(session_id, state, seg)
        bursts = state.segmenter.noise_bursts
        print(f"[vad] session {session_id}: {state.next_id} segments, {bursts} noise bursts", file=sys.stderr)

    def _emit(self, session_id: str, state: _Session, seg: Segment) -> None:
        end_sample = seg.start_sample + seg.samples.size
        # the segment's last sample was captured this long before the newest received one
        captured_at = state.captured_at - (state.position - end_sample) / SAMPLE_RATE
        meta = {
            Key.SESSION_ID: session_id, Key.SEGMENT_ID: state.next_id, Key.START_S: round(seg.start_s, 4),
            Key.END_S: round(seg.end_s, 4), Key.CAPTURED_AT: captured_at, Key.SEGMENTED_AT: now(),
            Key.FORCED_SPLIT: seg.forced_split,
            Key.SPEECH_FRAMES: seg.speech_frames, Key.NONFINITE_SAMPLES: count_nonfinite(seg.samples),
        }  # fmt: skip
        state.next_id += 1
        self.redo.send(session_id, state.next_id - 1, seg.samples, meta)


def run(node: Any, cfg: VadConfig) -> VadNode:
    vad = VadNode(node, cfg)
    closed: set[str] = set()
    for input_id, value, metadata in input_events(node, closes=True, restarts=True):
        if metadata is CLOSED:
            closed.add(Port.DONE if input_id.startswith(Port.DONE) else input_id)
        elif metadata is RESTARTED:
            vad.redo.restarted(input_id)
        elif metadata is FAILED and any(str(i).startswith(Port.DONE) for i in value.get("affected_input_ids", [])):
            vad.redo.give_up()
        elif input_id == Port.AUDIO:
            vad.on_audio(value, metadata)
        elif input_id == Port.READY:  # the asr (re)started: segments it lost go again
            vad.redo.ready()
        elif input_id.startswith(Port.DONE):
            vad.on_done(metadata)
        # dora may close an input before its queued messages arrive: done when every stream had its eos (and its finals)
        if Port.AUDIO in closed and not vad.sessions and (Port.DONE in closed or not vad.redo.redo.open):
            break
    for session_id in list(vad.sessions):
        vad.flush(session_id)
    vad.redo.acking = False  # the stream is over: segments still without a final (the asr is gone) are reported
    vad.redo.give_up()
    return vad


def main() -> None:
    from dora import Node

    cfg = load_config(VadConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
