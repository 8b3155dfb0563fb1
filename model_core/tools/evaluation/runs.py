"""Runners that produce hypotheses for a manifest: a text translator (in-process llama.cpp or MLX, or a llama.cpp
server), and Whisper on espeak-ng Mandarin synthesised from each row's pinyin.

Each hypothesis is {"id", "hyp", "latency_s"} (wall seconds of the model call), plus "error" when a translation
raised and "audio_s" for speech; `scoring.score` reads them.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import read_jsonl
from .scoring import TASKS

if TYPE_CHECKING:
    from ...translation.base import Translator

TRANSLATE_ENGINES = ("llama-cpp", "llama-cpp-server", "mlx")


# -- translators ------------------------------------------------------------------------------------------------


def run_translator(
    manifest: list[dict[str, Any]] | str | Path,
    translate: Callable[[str], str],
    progress: bool = True,
    source_key: str = "zh",
) -> list[dict[str, Any]]:
    """Call `translate(source text)` per manifest row; record {"id", "hyp", "latency_s"} (wall seconds).

    A row whose call raises keeps going: it gets hyp "" and "error": "<ExceptionName>: message", and is counted
    as an error (and scored as empty) by `score`.
    """
    from tqdm import tqdm

    rows = read_jsonl(manifest) if isinstance(manifest, str | Path) else manifest
    out = []
    for row in tqdm(rows, desc="translate", unit="sent", disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        try:
            hyp, error = translate(row[source_key]), None
        except Exception as exc:  # one failing sentence must not end a long run; it is recorded instead
            hyp, error = "", f"{type(exc).__name__}: {exc}"
        rec = {"id": row["id"], "hyp": hyp, "latency_s": time.perf_counter() - t0}
        if error:
            rec["error"] = error
        out.append(rec)
    return out


def open_translator(
    engine: str, model: str, stack: contextlib.ExitStack, lora: str = "", threads: int | None = None
) -> Translator:
    """A translator for `dfn-eval translate`: in-process llama.cpp or MLX (with an optional LoRA adapter,
    `local.resolve_lora`), or a llama.cpp server on localhost reached through the llm-fallback client (the server
    is stopped when `stack` closes)."""
    from ...translation.local import load_local_translator

    if engine != "llama-cpp-server":
        return load_local_translator(model, engine, n_threads=threads, lora=lora)
    if lora:
        raise ValueError("--lora is for the in-process engines (llama-cpp, mlx)")
    from ...translation.llama_cpp import LlamaCppServer
    from ...translation.local import packaged_translator_gguf
    from ...translation.remote import RemoteTranslator

    server = stack.enter_context(LlamaCppServer(packaged_translator_gguf() if model == "packaged" else model))
    return stack.enter_context(RemoteTranslator(server.base_url, "local", "DFN_NO_KEY"))


# -- speech -----------------------------------------------------------------------------------------------------


class EspeakMandarin:
    """Robotic Mandarin from espeak-ng's `cmn-latn-pinyin` voice, fed the tone-numbered pinyin, at 16 kHz.

    Pinyin rather than characters: `-v cmn` reads characters as Latin spelled in English, and `cmn-latn-pinyin`
    given characters picks readings from its own dictionary, while the dataset's pinyin has the right readings.
    """

    def __init__(self, words_per_minute: int = 175) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.binary = binary
        self.wpm = words_per_minute

    def synthesize(self, pinyin: str) -> np.ndarray:
        import soundfile as sf

        from ...speech.audio import resample

        proc = subprocess.run(
            [self.binary, "-v", "cmn-latn-pinyin", "-s", str(self.wpm), "--stdout"],
            input=pinyin.encode("utf-8"),  # stdin, so text can never be read as an option
            capture_output=True,
            timeout=60,
            check=True,
        )
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return resample(samples, rate)


def run_whisper_on_espeak(
    manifest: list[dict[str, Any]],
    tasks: tuple[str, ...] = TASKS,
    cpu_threads: int = 2,
    words_per_minute: int = 175,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Whisper base (faster-whisper, int8, beam 5) on espeak-ng Mandarin of each row's pinyin, language "zh".

    Returns hypotheses per task; latency_s is the recognition time only (synthesis excluded), audio_s the length.
    """
    from tqdm import tqdm

    from ...speech.whisper import WhisperRecognizer

    voice = EspeakMandarin(words_per_minute)
    recognizer = WhisperRecognizer(cpu_threads=cpu_threads)
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in tasks}
    for row in tqdm(manifest, desc="whisper", unit="sent", disable=not progress, file=sys.stderr):
        samples = voice.synthesize(row["pinyin"])
        for task in tasks:
            t0 = time.perf_counter()
            text = recognizer.recognize(samples, task=task, language="zh").text
            latency = time.perf_counter() - t0
            out[task].append({"id": row["id"], "hyp": text, "latency_s": latency, "audio_s": samples.size / 16000})
    return out
