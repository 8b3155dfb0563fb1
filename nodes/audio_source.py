"""audio-source: microphone capture or file replay (model_core.speech.mic / .replay) as 16 kHz mono float32 chunks.

Outputs `audio` (chunks: session_id, seq, sample_rate, captured_at = wall clock of its last sample, start_s = stream
time of its first sample; eos=true on the last, then the node exits so downstream inputs close) and `error`. Driven
by a `tick` timer (dora/timer/millis/20); DFN_SOURCE_START_ON_READY: starts when the `ready` input first sends."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dora_funasr_nano.model_core.common.errors import DeviceUnavailable, FunAsrNanoError
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE
from dora_funasr_nano.model_core.speech.mic import MicCapture
from dora_funasr_nano.model_core.speech.replay import FileReplay, Rechunker

from .config import load_config, resolve_user_path
from .contract import Key, Port, audio_message, error_message, now
from .events import wait_for_ready


def bundled_sample() -> Path:
    """A 6 s Mandarin sample ("你好世界", then counting one to ten) shipped with the package."""
    return Path(str(resources.files("dora_funasr_nano.nodes") / "samples" / "zh_hello_counting.wav"))


@dataclass
class AudioSourceConfig:
    """Microphone or file audio source."""

    PREFIX: ClassVar[str] = "DFN_SOURCE_"
    RENAMED: ClassVar[dict[str, str]] = {"mode": "source_mode", "file": "audio_file", "device": "mic_device"}
    ADDED: ClassVar[tuple[str, ...]] = ("max_in_flight", "ack_timeout_s")

    mode: str = "file"  # "file" or "mic"
    file: str = ""  # file mode; empty = the bundled Mandarin sample
    realtime: bool = True  # file mode: pace chunks like a live stream (false = as fast as possible)
    chunk_ms: int = 100  # chunk length
    session_id: str = ""  # empty = "<mode>-<random>"
    device: str = ""  # mic mode: sounddevice input device name or index; empty = system default
    duration_s: float = 0.0  # mic mode: stop after this long (0 = until the dataflow stops)
    start_on_ready: bool = False  # hold the stream until a message arrives on the `ready` input (model loaded)
    ready_timeout_s: float = 300.0  # ... or until this long has passed
    max_in_flight: int = 0  # file mode: chunks sent ahead of the `ack` input (the vad's); 0 = unpaced
    ack_timeout_s: float = 60.0  # no ack for this long: send one more window anyway (losses are reported)

    def __post_init__(self) -> None:
        if self.mode not in ("file", "mic"):
            raise ValueError(f"{self.PREFIX}MODE must be 'file' or 'mic', got {self.mode!r}")
        if not 10 <= self.chunk_ms <= 2000:
            raise ValueError(f"{self.PREFIX}CHUNK_MS must be within [10, 2000]")
        self.session_id = self.session_id or f"{self.mode}-{uuid.uuid4().hex[:8]}"


class ChunkSender:
    """Numbers and timestamps the chunks of one session."""

    def __init__(self, node: Any, session_id: str) -> None:
        self.node, self.session_id, self.seq, self.samples_sent = node, session_id, 0, 0

    def send(self, chunk: np.ndarray, eos: bool = False, **extra: Any) -> None:
        meta = {Key.SESSION_ID: self.session_id, Key.SEQ: self.seq, Key.CAPTURED_AT: now(),
                Key.START_S: self.samples_sent / SAMPLE_RATE, Key.EOS: eos, **extra}  # fmt: skip
        self.node.send_output(Port.AUDIO, *audio_message(chunk, SAMPLE_RATE, **meta))
        self.seq, self.samples_sent = self.seq + 1, self.samples_sent + chunk.size

    def end(self, error: FunAsrNanoError | None = None) -> None:
        """Close the stream (after the error, if any) with an empty eos chunk."""
        if error is not None:
            ids = {Key.SESSION_ID: self.session_id, Key.SEQ: self.seq}
            self.node.send_output(Port.ERROR, *error_message(error, **ids))
        self.send(np.zeros(0, np.float32), eos=True)


def run_file(node: Any, cfg: AudioSourceConfig) -> None:
    out = ChunkSender(node, cfg.session_id)
    path = resolve_user_path(cfg.file) or str(bundled_sample())
    try:
        chunk = cfg.chunk_ms * SAMPLE_RATE // 1000
        replay = FileReplay(path, chunk, cfg.realtime, window=cfg.max_in_flight, ack_timeout_s=cfg.ack_timeout_s)
    except FunAsrNanoError as exc:
        return out.end(exc)
    if cfg.start_on_ready and not wait_for_ready(node, cfg.ready_timeout_s, "audio-source"):
        return out.end()  # the graph stopped before the model was loaded
    replay.start()
    for event in node:
        if event["type"] == "STOP":
            break
        if event.get("id") == Port.ACK and event["metadata"].get(Key.SESSION_ID) == cfg.session_id:
            replay.ack(int(event["metadata"].get(Key.SEQ, -1)))
        try:
            for chunk, last in replay.due():
                out.send(chunk, eos=last)
        except FunAsrNanoError as exc:  # a file that breaks mid-way still ends its stream
            out.end(exc)
        if replay.done:
            break
    if not replay.done:  # stopped mid-file: still close the stream for downstream nodes
        out.end()
    waits = f", {replay.ack_timeouts} ack timeouts" if cfg.max_in_flight else ""
    print(f"[audio-source] {path}: sent {out.seq} chunks, {out.samples_sent / SAMPLE_RATE:.2f} s{waits}",
          file=sys.stderr)  # fmt: skip


def run_mic(node: Any, cfg: AudioSourceConfig) -> None:
    out = ChunkSender(node, cfg.session_id)
    chunker = Rechunker(cfg.chunk_ms * SAMPLE_RATE // 1000)
    if cfg.start_on_ready and not wait_for_ready(node, cfg.ready_timeout_s, "audio-source"):
        return out.end()  # the graph stopped before the model was loaded
    try:
        mic = MicCapture(cfg.device, chunker.size)
    except DeviceUnavailable as exc:
        return out.end(exc)
    print(f"[audio-source] recording from {mic.name} at {mic.rate} Hz", file=sys.stderr)
    t0 = time.monotonic()
    for event in node:
        stopping = event["type"] == "STOP" or bool(cfg.duration_s and time.monotonic() - t0 >= cfg.duration_s)
        for chunk in chunker.push(mic.read()):
            out.send(chunk, **{Key.OVERFLOWS: mic.overflows})
        if stopping:
            break
    mic.close()
    out.send(chunker.rest(), eos=True, **{Key.OVERFLOWS: mic.overflows})
    print(f"[audio-source] mic: sent {out.seq} chunks, {mic.overflows} overflows", file=sys.stderr)


def run(node: Any, cfg: AudioSourceConfig) -> None:
    (run_mic if cfg.mode == "mic" else run_file)(node, cfg)


def main() -> None:
    from dora import Node

    cfg = load_config(AudioSourceConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
