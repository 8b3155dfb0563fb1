"""audio-source: microphone capture (sounddevice) or file replay, as 16 kHz mono float32 chunks.

Outputs `audio` (chunks) and `error`. Every chunk carries session_id, seq, sample_rate, captured_at (wall clock of
its last sample) and start_s (stream time of its first sample); the last chunk of a stream carries eos=true, and
the node then exits so downstream inputs close. Driven by a `tick` timer input (e.g. dora/timer/millis/20).
With START_ON_READY the stream starts only when the optional `ready` input (e.g. asr/ready) sends something.
"""

from __future__ import annotations

import os
import queue
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soxr

from dora_funasr_nano.model_core.common.errors import DeviceUnavailable, FunAsrNanoError
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE, iter_audio_file

from .config import load_config
from .contract import audio_message, error_message, now


def bundled_sample() -> Path:
    """A 6 s Mandarin sample ("你好世界", then counting one to ten) shipped with the package."""
    return Path(str(resources.files("dora_funasr_nano.nodes") / "samples" / "zh_hello_counting.wav"))


@dataclass
class AudioSourceConfig:
    """Microphone or file audio source."""

    source_mode: str = "file"  # "file" or "mic"
    audio_file: str = ""  # file mode; empty = the bundled Mandarin sample
    realtime: bool = True  # file mode: pace chunks like a live stream (false = as fast as possible)
    chunk_ms: int = 100  # chunk length
    session_id: str = ""  # empty = "<mode>-<random>"
    mic_device: str = ""  # sounddevice input device name or index; empty = system default
    duration_s: float = 0.0  # mic mode: stop after this long (0 = until the dataflow stops)
    start_on_ready: bool = False  # hold the stream until a message arrives on the `ready` input (model loaded)
    ready_timeout_s: float = 300.0  # ... or until this long has passed

    def __post_init__(self) -> None:
        if self.source_mode not in ("file", "mic"):
            raise ValueError(f"SOURCE_MODE must be 'file' or 'mic', got {self.source_mode!r}")
        if not 10 <= self.chunk_ms <= 2000:
            raise ValueError("CHUNK_MS must be within [10, 2000]")
        self.session_id = self.session_id or f"{self.source_mode}-{uuid.uuid4().hex[:8]}"


def resolve_user_path(path: str) -> str:
    """dora starts nodes in the dataflow's folder; a relative path the user typed is relative to their shell's."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    shell_cwd = os.environ.get("PWD", "")
    candidate = os.path.join(shell_cwd, path)
    return candidate if shell_cwd and os.path.exists(candidate) else path


def rechunk(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Fixed-size chunks from variable blocks; the last chunk may be shorter."""
    pending = np.zeros(0, np.float32)
    for block in blocks:
        pending = np.concatenate([pending, block])
        while pending.size >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending.size:
        yield pending


class MicCapture:
    """PortAudio capture. The callback only enqueues; overflows are counted, never handled in the callback."""

    def __init__(self, device: str, chunk: int) -> None:
        import sounddevice as sd

        self.frames: queue.Queue[np.ndarray] = queue.Queue()
        self.overflows = 0
        dev: int | str | None = int(device) if device.isdigit() else (device or None)
        try:
            info = sd.query_devices(dev, "input")
            # Capture at 16 kHz when the device allows it, else at its native rate and resample here.
            try:
                sd.check_input_settings(device=dev, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
                self.rate = SAMPLE_RATE
            except Exception:
                self.rate = int(info["default_samplerate"])
            self.stream = sd.InputStream(
                device=dev,
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                blocksize=chunk * self.rate // SAMPLE_RATE,
                callback=self._callback,
            )
            self.stream.start()
        except Exception as exc:  # PortAudio raises plain Exceptions/ValueErrors
            raise DeviceUnavailable(f"cannot open audio input {device or '(default)'}: {exc}") from exc
        self.name = info["name"]
        self.resampler = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, "float32")

    def _callback(self, indata, frames, time_info, status) -> None:  # noqa: ANN001
        if status.input_overflow:
            self.overflows += 1
        self.frames.put_nowait(indata[:, 0].copy())

    def read(self) -> np.ndarray:
        """Everything captured since the last call, as 16 kHz samples."""
        blocks = []
        while True:
            try:
                blocks.append(self.frames.get_nowait())
            except queue.Empty:
                break
        data = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return data if self.resampler is None else self.resampler.resample_chunk(data)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


class ChunkSender:
    """Numbers and timestamps chunks of one session."""

    def __init__(self, node, session_id: str) -> None:  # noqa: ANN001
        self.node, self.session_id = node, session_id
        self.seq = 0
        self.samples_sent = 0

    def send(self, chunk: np.ndarray, eos: bool = False, **extra) -> None:  # noqa: ANN003
        value, meta = audio_message(
            chunk,
            SAMPLE_RATE,
            session_id=self.session_id,
            seq=self.seq,
            captured_at=now(),
            start_s=self.samples_sent / SAMPLE_RATE,
            eos=eos,
            **extra,
        )
        self.node.send_output("audio", value, meta)
        self.seq += 1
        self.samples_sent += chunk.size

    def error(self, exc: FunAsrNanoError) -> None:
        value, meta = error_message(exc, session_id=self.session_id, seq=self.seq)
        self.node.send_output("error", value, meta)


def wait_until_ready(node, cfg: AudioSourceConfig) -> bool:  # noqa: ANN001
    """With start_on_ready, consume events until `ready` arrives, so the first segment does not queue behind
    model loading. False if the dataflow stopped meanwhile."""
    if not cfg.start_on_ready:
        return True
    deadline = time.monotonic() + cfg.ready_timeout_s
    for event in node:
        if event["type"] == "STOP":
            return False
        if event.get("id") == "ready" and event["type"] in ("INPUT", "INPUT_CLOSED"):
            return True
        if time.monotonic() > deadline:
            print(f"[audio-source] no `ready` after {cfg.ready_timeout_s} s, starting anyway", file=sys.stderr)
            return True
    return False


def run_file(node, cfg: AudioSourceConfig) -> None:  # noqa: ANN001
    out = ChunkSender(node, cfg.session_id)
    path = resolve_user_path(cfg.audio_file) or str(bundled_sample())
    chunk = cfg.chunk_ms * SAMPLE_RATE // 1000
    try:
        chunks = rechunk(iter_audio_file(path), chunk)
        current = next(chunks, None)
    except FunAsrNanoError as exc:
        out.error(exc)
        out.send(np.zeros(0, np.float32), eos=True)
        return
    if not wait_until_ready(node, cfg):
        out.send(np.zeros(0, np.float32), eos=True)
        return
    t0 = time.monotonic()
    for event in node:
        if event["type"] == "STOP":
            if current is not None:  # stopped mid-file: still close the stream for downstream nodes
                out.send(np.zeros(0, np.float32), eos=True)
            break
        if event["type"] != "INPUT":
            continue
        try:
            while current is not None:
                due = t0 + (out.samples_sent + current.size) / SAMPLE_RATE
                if cfg.realtime and time.monotonic() < due:
                    break  # not captured yet in a live stream: wait for the next tick
                upcoming = next(chunks, None)
                out.send(current, eos=upcoming is None)
                current = upcoming
        except FunAsrNanoError as exc:  # a file that breaks mid-way still ends its stream
            out.error(exc)
            out.send(np.zeros(0, np.float32), eos=True)
            current = None
        if current is None:
            break
    print(f"[audio-source] {path}: sent {out.seq} chunks, {out.samples_sent / SAMPLE_RATE:.2f} s", file=sys.stderr)


def run_mic(node, cfg: AudioSourceConfig) -> None:  # noqa: ANN001
    out = ChunkSender(node, cfg.session_id)
    chunk = cfg.chunk_ms * SAMPLE_RATE // 1000
    if not wait_until_ready(node, cfg):
        out.send(np.zeros(0, np.float32), eos=True)
        return
    try:
        mic = MicCapture(cfg.mic_device, chunk)
    except DeviceUnavailable as exc:
        out.error(exc)
        out.send(np.zeros(0, np.float32), eos=True)
        return
    print(f"[audio-source] recording from {mic.name} at {mic.rate} Hz", file=sys.stderr)
    t0 = time.monotonic()
    pending = np.zeros(0, np.float32)
    stopping = False
    for event in node:
        if event["type"] == "STOP":
            stopping = True
        elif event["type"] != "INPUT":
            continue
        if cfg.duration_s and time.monotonic() - t0 >= cfg.duration_s:
            stopping = True
        pending = np.concatenate([pending, mic.read()])
        while pending.size >= chunk:
            out.send(pending[:chunk], overflows=mic.overflows)
            pending = pending[chunk:]
        if stopping:
            break
    mic.close()
    out.send(pending, eos=True, overflows=mic.overflows)
    print(f"[audio-source] mic: sent {out.seq} chunks, {mic.overflows} overflows", file=sys.stderr)


def run(node, cfg: AudioSourceConfig) -> None:  # noqa: ANN001
    (run_mic if cfg.source_mode == "mic" else run_file)(node, cfg)


def main() -> None:
    from dora import Node

    cfg = load_config(AudioSourceConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
