"""Realtime Chinese -> English from the microphone, with partial results, using model_core only (no dora).

    python examples/realtime_mic.py                      # Whisper base transcribes, the packaged model translates
    python examples/realtime_mic.py --funasr <folder|id> # Fun-ASR-Nano transcribes (sentences stream while decoding)
    python examples/realtime_mic.py --input talk.wav     # replay a file in real time instead of the microphone

Each sentence is printed as soon as it is translated (`…` lines), then the whole segment. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import queue
import time

import numpy as np
from common import Transcriber, say

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas
from dora_funasr_nano.model_core.common.errors import FunAsrNanoError
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE, iter_audio_file
from dora_funasr_nano.model_core.speech.vad import SileroVad, SpeechSegmenter
from dora_funasr_nano.model_core.translation.local import load_local_translator

BLOCK_S = 0.1


def microphone(chunks: queue.Queue) -> object:
    import sounddevice as sd

    # the callback only enqueues: recognition runs in the main loop, and no audio is dropped meanwhile
    return sd.InputStream(
        samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=int(SAMPLE_RATE * BLOCK_S),
        callback=lambda data, frames, t, status: chunks.put(data[:, 0].copy()),
    )  # fmt: skip


def replay(path: str, chunks: queue.Queue, realtime: bool) -> None:
    for block in iter_audio_file(path, block_s=BLOCK_S):
        chunks.put(block)
        if realtime:
            time.sleep(BLOCK_S)
    chunks.put(None)  # end of stream


def main() -> None:
    ensure_fast_blas()  # Linux: MLX with the system OpenBLAS (re-executes this script once)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--funasr", help="Fun-ASR-Nano folder or model id (default: Whisper base)")
    parser.add_argument("--translate-model", default="packaged", help="packaged, a .gguf, or an mlx-lm folder/id")
    parser.add_argument("--input", help="an audio file replayed in real time instead of the microphone")
    parser.add_argument("--fast", action="store_true", help="with --input: do not wait between blocks")
    args = parser.parse_args()

    transcriber = Transcriber(args.funasr)
    translator = load_local_translator(args.translate_model)
    segmenter = SpeechSegmenter(SileroVad())
    chunks: queue.Queue = queue.Queue()

    def handle(segment) -> None:  # noqa: ANN001
        span = f"{segment.start_s:6.1f}-{segment.end_s:5.1f}s"
        try:
            chinese, english = transcriber.translate(
                segment.samples, translator, on_partial=lambda zh, en: say(f"  … {zh} -> {en}")
            )
            say(f"{span}  {chinese}\n{' ' * len(span)}  {english}")
        except FunAsrNanoError as exc:  # one bad segment (too short, no speech...) does not stop the session
            say(f"{span}  [{exc.code}] {exc}")

    if args.input:
        import threading

        threading.Thread(target=replay, args=(args.input, chunks, not args.fast), daemon=True).start()
        source = None
    else:
        source = microphone(chunks)
        source.start()
        say("listening (Ctrl-C stops)")
    try:
        while (block := chunks.get()) is not None:
            for segment in segmenter.push(np.asarray(block, np.float32)):
                handle(segment)
    except KeyboardInterrupt:
        pass
    finally:
        if source is not None:
            source.stop()
    for segment in segmenter.flush():
        handle(segment)


if __name__ == "__main__":
    main()
