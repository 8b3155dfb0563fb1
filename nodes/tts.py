"""tts: speaks final English texts with espeak-ng (default) or a packaged piper voice.

Input `text`, or several text inputs under any names (partials, fin=false, are skipped); an input that carries
errors (metadata `code`, e.g. `asr_error`) is not spoken, it tells the node which segments have no text. Outputs
`audio` (float32 mono at the engine's rate, with sample_rate, the segment ids and `skipped`) and `error`. A graph
that prefers a current voice (`drop_oldest` on the text input) loses texts on purpose: `skipped` counts, per
session, the segments below the newest one that reached this node as neither text nor error, and the node prints
the count when it ends. Optionally plays through the default output device (model_core.speech.player: one
utterance after the other, in a background thread) and/or writes <session>-<segment>.wav files into DFN_TTS_WAV_DIR.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import soundfile as sf

from dora_funasr_nano.model_core.common.errors import (
    DeviceUnavailable,
    FunAsrNanoError,
    ModelNotLoaded,
    OutputFailed,
    SynthesisFailed,
)
from dora_funasr_nano.model_core.speech.player import Player
from dora_funasr_nano.model_core.speech.tts import Synthesizer, make_synthesizer

from .config import load_config
from .contract import Key, Port, audio_message, error_message, read_text, segment_ids
from .events import input_events


@dataclass
class TtsConfig:
    """English speech output."""

    PREFIX: ClassVar[str] = "DFN_TTS_"
    RENAMED: ClassVar[dict[str, str]] = {"engine": "tts_engine", "voice": "tts_voice"}

    engine: str = "espeak"  # "espeak" or "piper"
    voice: str = ""  # espeak voice (default en-us) or a piper .onnx path (default: the packaged joe voice)
    play: bool = False  # play through the default output device
    wav_dir: str = ""  # write one WAV per segment here; empty = do not write

    def __post_init__(self) -> None:
        if self.engine not in ("espeak", "piper"):
            raise ValueError(f"{self.PREFIX}ENGINE must be espeak or piper, got {self.engine!r}")


class TtsNode:
    def __init__(self, node: Any, cfg: TtsConfig, synthesizer: Synthesizer | None = None) -> None:
        self.node, self.cfg = node, cfg
        self.load_error: FunAsrNanoError | None = None
        self.synth = synthesizer
        if synthesizer is None:
            try:
                self.synth = make_synthesizer(cfg.engine, cfg.voice)
            except FunAsrNanoError as exc:
                self.load_error = exc
        self.player: Player | None = None
        self.seen: dict[str, set[int]] = {}  # segment ids per session that reached the node (text or error)
        if cfg.play:
            try:
                self.player = Player()
            except Exception as exc:  # noqa: BLE001
                self.load_error = self.load_error or DeviceUnavailable(f"cannot play audio: {exc}")
        if cfg.wav_dir:
            try:
                Path(cfg.wav_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # each WAV that cannot be written is then an OutputFailed error
                print(f"[tts] cannot create {cfg.wav_dir}: {exc}", file=sys.stderr)

    def skipped(self, session: str) -> int:
        seen = self.seen.get(session, set())
        return max(seen) + 1 - len(seen) if seen else 0

    def on_text(self, value: Any, metadata: dict[str, Any]) -> None:
        if not metadata.get(Key.FIN, True):
            return
        ids = segment_ids(metadata)
        session, segment = str(metadata.get(Key.SESSION_ID, "")), metadata.get(Key.SEGMENT_ID)
        if isinstance(segment, int):
            self.seen.setdefault(session, set()).add(segment)
        if Key.CODE in metadata:  # an error: that segment has no text to speak
            return
        try:
            if self.load_error is not None or self.synth is None:
                raise self.load_error or ModelNotLoaded("no synthesizer")
            try:
                samples, rate = self.synth.synthesize(read_text(value))
            except FunAsrNanoError:
                raise
            except Exception as exc:  # espeak timeouts, a broken voice: still one typed error
                raise SynthesisFailed(f"{type(exc).__name__}: {exc}") from exc
        except FunAsrNanoError as exc:
            self.node.send_output(Port.ERROR, *error_message(exc, **ids))
            return
        meta = {**ids, Key.TEXT_LANGUAGE: metadata.get(Key.LANGUAGE), Key.SKIPPED: self.skipped(session)}
        self.node.send_output(Port.AUDIO, *audio_message(samples, rate, **meta))
        if self.cfg.wav_dir:
            name = f"{ids.get(Key.SESSION_ID, 'session')}-{ids.get(Key.SEGMENT_ID, 0)}.wav"
            try:
                sf.write(Path(self.cfg.wav_dir) / name, samples, rate)
            except Exception as exc:  # noqa: BLE001 - read-only folder, disk full: reported, the graph goes on
                self.node.send_output(Port.ERROR, *error_message(OutputFailed(f"cannot write {name}: {exc}"), **ids))
        if self.player is not None:
            self.player.play(samples, rate)

    def close(self) -> None:
        if self.player is not None:
            self.player.close()
        for session in self.seen:
            if skipped := self.skipped(session):
                print(f"[tts] session {session}: {skipped} segments reached the tts as neither text nor error "
                      "(a drop_oldest queue dropped them, or their error went elsewhere)", flush=True)  # fmt: skip


def run(node: Any, cfg: TtsConfig, synthesizer: Synthesizer | None = None) -> TtsNode:
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
