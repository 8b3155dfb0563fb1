"""vad: streaming speech segmentation with Silero VAD (see model_core.vad for the segmenter).

Input `audio` (chunks from audio-source, any rate). Outputs `segment` (16 kHz float32 speech with session_id,
segment_id, start_s, end_s, captured_at = wall clock of the segment's last sample) and `error`.
A chunk with eos=true, or the input closing, flushes the trailing speech of its session.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields

from dora_funasr_nano.model_core.common.errors import FunAsrNanoError
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE, count_nonfinite
from dora_funasr_nano.model_core.speech.vad import Segment, SegmenterConfig, SileroVad, SpeechSegmenter

from .config import load_config
from .contract import audio_message, error_message, read_audio
from .events import input_events


@dataclass
class VadConfig(SegmenterConfig):
    """Silero VAD segmenter (thresholds are speech probabilities, times in seconds)."""


class _Session:
    def __init__(self, segmenter: SpeechSegmenter) -> None:
        self.segmenter = segmenter
        self.next_id = 0
        self.position = 0  # 16 kHz samples received
        self.captured_at = 0.0  # wall clock of the last received sample


class VadNode:
    def __init__(self, node, cfg: VadConfig) -> None:  # noqa: ANN001
        self.node, self.cfg = node, cfg
        self.sessions: dict[str, _Session] = {}
        self.segments_sent = 0

    def _session(self, session_id: str) -> _Session:
        if session_id not in self.sessions:
            seg_cfg = SegmenterConfig(**{f.name: getattr(self.cfg, f.name) for f in fields(SegmenterConfig)})
            self.sessions[session_id] = _Session(SpeechSegmenter(SileroVad(), seg_cfg))
        return self.sessions[session_id]

    def on_audio(self, value, metadata: dict) -> None:  # noqa: ANN001
        session_id = str(metadata.get("session_id", "default"))
        try:
            samples = read_audio(value, metadata)
        except FunAsrNanoError as exc:
            self._error(exc, session_id=session_id, seq=metadata.get("seq"))
            return
        state = self._session(session_id)
        state.position += samples.size
        state.captured_at = float(metadata.get("captured_at", 0.0))
        for seg in state.segmenter.push(samples):
            self._emit(session_id, state, seg)
        if metadata.get("eos"):
            self.flush(session_id)

    def flush(self, session_id: str) -> None:
        state = self.sessions.pop(session_id, None)
        if state is None:
            return
        for seg in state.segmenter.flush():
            self._emit(session_id, state, seg)
        print(
            f"[vad] session {session_id}: {state.next_id} segments, "
            f"{state.segmenter.noise_bursts} noise bursts below min_speech_s",
            file=sys.stderr,
        )

    def flush_all(self) -> None:
        for session_id in list(self.sessions):
            self.flush(session_id)

    def _emit(self, session_id: str, state: _Session, seg: Segment) -> None:
        end_sample = seg.start_sample + seg.samples.size
        # the segment's last sample was captured this long before the newest received one
        captured_at = state.captured_at - (state.position - end_sample) / SAMPLE_RATE
        value, meta = audio_message(
            seg.samples,
            SAMPLE_RATE,
            session_id=session_id,
            segment_id=state.next_id,
            start_s=round(seg.start_s, 4),
            end_s=round(seg.end_s, 4),
            captured_at=captured_at,
            forced_split=seg.forced_split,
            speech_frames=seg.speech_frames,
            nonfinite_samples=count_nonfinite(seg.samples),
        )
        self.node.send_output("segment", value, meta)
        state.next_id += 1
        self.segments_sent += 1

    def _error(self, exc: FunAsrNanoError, **ids) -> None:  # noqa: ANN003
        value, meta = error_message(exc, **ids)
        self.node.send_output("error", value, meta)


def run(node, cfg: VadConfig) -> VadNode:  # noqa: ANN001
    vad = VadNode(node, cfg)
    for input_id, value, metadata in input_events(node):
        if input_id == "audio":
            vad.on_audio(value, metadata)
    vad.flush_all()
    return vad


def main() -> None:
    from dora import Node

    cfg = load_config(VadConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
