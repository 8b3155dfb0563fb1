"""dfn-bench inprocess: the Whisper graphs' work done in one process with model_core only (the examples' library path:
the same Silero VAD segmenter, then WhisperRecognizer per segment, then the packaged translator for the two-stage
task), on a workload's audio, timed after the models are loaded. Against a graph's fast-replay processing time
(`--report`), the ratio is what the dataflow (processes, messages, queues, the tts and probe beside it) costs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from . import workload as wl


def measure(workload: wl.Workload, task: str) -> dict[str, Any]:
    from ...speech.audio import load_audio
    from ...speech.vad import SileroVad, SpeechSegmenter
    from ...speech.whisper import WhisperRecognizer

    asr = WhisperRecognizer()
    asr.warm_up()
    translator = None
    if task == "two_stage":
        from ...translation.local import load_local_translator

        translator = load_local_translator("packaged")
    audio = load_audio(workload.audio)
    t0 = time.perf_counter()
    segmenter = SpeechSegmenter(SileroVad())
    segments = segmenter.push(audio) + segmenter.flush()
    t_vad = time.perf_counter()
    asr_s = translate_s = 0.0
    for seg in segments:
        t = time.perf_counter()
        rec = asr.recognize(seg.samples, "translate" if translator is None else "transcribe", "zh")
        asr_s += time.perf_counter() - t
        if translator is not None and rec.text.strip():
            t = time.perf_counter()
            translator.translate(rec.text, source_language="zh")
            translate_s += time.perf_counter() - t
    total = time.perf_counter() - t0
    return {"task": task, "segments": len(segments), "audio_s": workload.duration_s, "vad_s": t_vad - t0,
            "asr_s": asr_s, "translate_s": translate_s, "total_s": total,
            "throughput_x": workload.duration_s / total}  # fmt: skip


def inprocess(opts: argparse.Namespace) -> dict[str, Any]:
    workload = wl.Workload.load(opts.workload)
    result = measure(workload, opts.task)
    if opts.report:
        runs = json.loads(Path(opts.report).read_text())["runs"]
        graph = "file_whisper_translate" if opts.task == "translate" else "file_whisper_two_stage"
        fast = next((r for r in runs if r["graph"] == graph and r["mode"] == "fast"), None)
        if fast and fast.get("processing_s"):
            result["graph_processing_s"] = fast["processing_s"]
            result["graph_over_inprocess"] = fast["processing_s"] / result["total_s"]
    print(json.dumps(result, indent=2))
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inprocess", help="the Whisper graph's models called in one process, for the dora overhead")
    p.add_argument("--workload", required=True)
    p.add_argument("--task", choices=("translate", "two_stage"), default="translate")
    p.add_argument("--report", help="a `run` report.json with the same graph in fast replay, to compare")
    p.add_argument("--json", help="write the figures here")
    p.set_defaults(func=inprocess)
