"""Batch Chinese -> English of every audio file in a folder, using model_core only (no dora).

    python examples/batch_folder.py recordings/ -o translations.jsonl
    python examples/batch_folder.py recordings/ --funasr <folder|id>   # Fun-ASR-Nano instead of Whisper base

Each file is cut into speech segments by the VAD; every segment becomes one JSON line
{"file", "start_s", "end_s", "zh", "en"} or, if it fails, {"file", "start_s", "end_s", "error", "message"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import Transcriber
from tqdm import tqdm

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas
from dora_funasr_nano.model_core.common.errors import FunAsrNanoError
from dora_funasr_nano.model_core.speech.audio import load_audio
from dora_funasr_nano.model_core.speech.vad import SileroVad, SpeechSegmenter
from dora_funasr_nano.model_core.translation.local import load_local_translator

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def segments_of(path: Path) -> list:
    segmenter = SpeechSegmenter(SileroVad())
    return segmenter.push(load_audio(path)) + segmenter.flush()


def main() -> None:
    ensure_fast_blas()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("-o", "--output", default="-", help="JSONL file ('-' = stdout)")
    parser.add_argument("--funasr", help="Fun-ASR-Nano folder or model id (default: Whisper base)")
    parser.add_argument("--translate-model", default="packaged", help="packaged, a .gguf, or an mlx-lm folder/id")
    args = parser.parse_args()

    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    transcriber, translator = Transcriber(args.funasr), load_local_translator(args.translate_model)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    with out:
        for path in tqdm(files, unit="file", file=sys.stderr):
            try:
                segments = segments_of(path)
            except FunAsrNanoError as exc:
                rows = [{"file": str(path), "error": exc.code, "message": str(exc)}]
                segments = []
            else:
                rows = []
            for seg in segments:
                row = {"file": str(path), "start_s": round(seg.start_s, 2), "end_s": round(seg.end_s, 2)}
                try:
                    row["zh"], row["en"] = transcriber.translate(seg.samples, translator)
                except FunAsrNanoError as exc:
                    row |= {"error": exc.code, "message": str(exc)}
                rows.append(row)
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
