"""tts: speaks final English texts with espeak-ng (default) or a packaged piper voice.

Input `text`, or several text inputs under any names (partials, fin=false, are skipped). Outputs `audio`
(float32 mono at the engine's rate, with sample_rate and the segment ids) and `error`. Optionally plays through
the default output device (one utterance after the other, in a background thread) and/or writes
<session>-<segment>.wav files into WAV_DIR.
"""

from __future__ import annotations

import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dora_funasr_nano.model_core.common.errors import DeviceUnavailable, FunAsrNanoError
from dora_funasr_nano.model_core.speech.tts import Synthesizer, make_synthesizer

from .config import load_config
from .contract import audio_message, error_message, read_text, segment_ids
from .events import input_events


@dataclass
class TtsConfig:
    """English speech output."""

    tts_engine: str = "espeak"  # "espeak" or "piper"
    tts_voice: str = ""  # espeak voice (default en-us) or a piper .onnx path (default: the packaged joe voice)
    play: bool = False  # play through the default output device
    wav_dir: str = ""  # write one WAV per segment here; empty = do not write

    def __post_init__(self) -> None:
        if self.tts_engine not in ("espeak", "piper"):
            raise ValueError(f"TTS_ENGINE must be espeak or piper, got {self.tts_engine!r}")


class Player:
    """Plays utterances in order without blocking the event loop."""

    def __init__(self) -> None:
        import sounddevice as sd

        self.sd = sd
        self.jobs: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                self.sd.play(job[0], job[1], blocking=True)
            except Exception as exc:  # noqa: BLE001 - a missing speaker must not stop the graph
                print(f"[tts] playback failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=120)


class TtsNode:
    def __init__(self, node, cfg: TtsConfig, synthesizer: Synthesizer | None = None) -> None:  # noqa: ANN001
        self.node, self.cfg = node, cfg
        self.load_error: FunAsrNanoError | None = None
        self.synth = synthesizer
        if synthesizer is None:
            try:
                self.synth = make_synthesizer(cfg.tts_engine, cfg.tts_voice)
            except FunAsrNanoError as exc:
                self.load_error = exc
        self.player: Player | None = None
        if cfg.play:
            try:
                self.player = Player()
            except Exception as exc:  # noqa: BLE001
                self.load_error = self.load_error or DeviceUnavailable(f"cannot play audio: {exc}")
        if cfg.wav_dir:
            Path(cfg.wav_dir).mkdir(parents=True, exist_ok=True)

    def on_text(self, value, metadata: dict) -> None:  # noqa: ANN001
        if not metadata.get("fin", True):
            return
        ids = segment_ids(metadata)
        try:
            if self.load_error is not None:
                raise self.load_error
            samples, rate = self.synth.synthesize(read_text(value))
        except FunAsrNanoError as exc:
            self.node.send_output("error", *error_message(exc, **ids))
            return
        self.node.send_output("audio", *audio_message(samples, rate, **ids, text_language=metadata.get("language")))
        if self.cfg.wav_dir:
            name = f"{ids.get('session_id', 'session')}-{ids.get('segment_id', 0)}.wav"
            sf.write(Path(self.cfg.wav_dir) / name, samples, rate)
        if self.player is not None:
            self.player.jobs.put((samples, rate))

    def close(self) -> None:
        if self.player is not None:
            self.player.close()


def run(node, cfg: TtsConfig, synthesizer: Synthesizer | None = None) -> TtsNode:  # noqa: ANN001
    tts = TtsNode(node, cfg, synthesizer)
    for _, value, metadata in input_events(node):  # every input is text (e.g. `text` and `fallback_text`)
        tts.on_text(value, metadata)
    tts.close()
    return tts


def main() -> None:
    from dora import Node

    cfg = load_config(TtsConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
