"""Training rows: the official ChatML JSONL, the seed's JSON, the task-row builder and the task mix sampler.

Official (funasr docs/finetune.md, data/train_example.jsonl), one object per line:
    {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "语音转写：<|startofspeech|>!/path/a.wav<|endofspeech|>"},
                  {"role": "assistant", "content": "<text>"}],
     "speech_length": <fbank frames>, "text_length": <Qwen3 tokens>}
Seed: a JSON list (or JSON Lines) of {"instruction": <prompt>, "input": <audio path>, "output": <target>}.
Relative audio paths are relative to the data file's folder.

A row's kind decides how the sampler mixes it: `translate` (prompt 转写语音并翻译为英文：), `transcribe` (any of the
official transcription prompts) or `instruction` (anything else).

HSK evaluation sentences (`evaluation.data.is_eval_id`) are never trained on: a manifest row or a training row that
carries an HSK id (its `id` / `key`, or its audio file's name, as the HSK package names its clips: hsk1-0001.mp3,
hsk1-0001_slow.mp3) in the evaluation bucket is dropped, and the commands say how many.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...common.errors import TranslationFailed
from ...fun_asr_nano.prompts import SYSTEM_PROMPT, TRANSLATE_TO_ENGLISH_PROMPT, TaskMode, user_prompt
from ...translation.base import Translator
from ..evaluation.data import is_eval_id

KINDS = ("transcribe", "translate", "instruction")
DEFAULT_MIX = {"transcribe": 0.6, "translate": 0.3, "instruction": 0.1}
# upstream's transcription prompts (Chinese and English spellings, with or without a language / ITN switch)
TRANSCRIBE_PREFIXES = ("语音转写", "Speech transcription", "Transcribe speech")
SPEECH = re.compile(r"^(?P<prompt>.*?)<\|startofspeech\|>!(?P<audio>.+?)<\|endofspeech\|>(?P<rest>.*)$", re.DOTALL)
HSK_ID = re.compile(r"hsk[1-6]-[0-9]+")  # the HSK package's sentence ids, also the stem of its audio files
FBANK_SHIFT, FBANK_WINDOW = 160, 400  # samples at 16 kHz: 10 ms shift, 25 ms window (speech_length counts frames)


@dataclass(frozen=True)
class Example:
    audio: str  # path of the audio file
    prompt: str  # the user text in front of the audio rows
    target: str  # what the assistant says
    kind: str  # transcribe | translate | instruction


def kind_of(prompt: str) -> str:
    if prompt == TRANSLATE_TO_ENGLISH_PROMPT:
        return "translate"
    return "transcribe" if prompt.startswith(TRANSCRIBE_PREFIXES) else "instruction"


def _resolve(audio: str, base: Path) -> str:
    if re.match(r"^[a-z]+://", audio):
        raise ValueError(f"{audio}: training reads local files only; download the audio and point to it")
    path = Path(audio).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_chatml(row: dict[str, Any], base: Path = Path(".")) -> Example:
    """One official ChatML row -> Example. Only the system prompt the model was trained with is accepted."""
    roles = {m["role"]: m["content"] for m in row["messages"]}
    if set(roles) != {"system", "user", "assistant"} or len(row["messages"]) != 3:
        raise ValueError("a row needs exactly one system, one user and one assistant message")
    if roles["system"] != SYSTEM_PROMPT:
        raise ValueError(f"system prompt {roles['system']!r}: the model is trained with {SYSTEM_PROMPT!r}")
    match = SPEECH.match(roles["user"])
    if match is None or match["rest"].strip():
        raise ValueError("the user turn must be <prompt><|startofspeech|>!<audio><|endofspeech|>")
    prompt = match["prompt"]
    return Example(_resolve(match["audio"].strip(), base), prompt, roles["assistant"], kind_of(prompt))


def parse_seed(row: dict[str, Any], base: Path = Path(".")) -> Example:
    prompt = str(row["instruction"])
    return Example(_resolve(str(row["input"]), base), prompt, str(row["output"]), kind_of(prompt))


def read_rows(path: str | Path) -> list[Example]:
    """A ChatML JSONL or a seed JSON / JSONL file (told apart by each row's keys)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        raw: list[dict[str, Any]] = json.loads(text)
    else:
        raw = [json.loads(line) for line in text.splitlines() if line.strip()]
    out = []
    for number, row in enumerate(raw, 1):
        try:
            out.append(parse_chatml(row, path.parent) if "messages" in row else parse_seed(row, path.parent))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: row {number}: {exc}") from exc
    return out


def speech_length(samples: int) -> int:
    """fbank frames of `samples` 16 kHz samples (upstream's speech_length)."""
    return 0 if samples < FBANK_WINDOW else 1 + (samples - FBANK_WINDOW) // FBANK_SHIFT


def to_chatml(example: Example, speech_frames: int, text_tokens: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{example.prompt}<|startofspeech|>!{example.audio}<|endofspeech|>"},
            {"role": "assistant", "content": example.target},
        ],
        "speech_length": speech_frames,
        "text_length": text_tokens,
    }


def write_chatml(
    examples: Iterable[Example], path: str | Path, count_tokens: Callable[[str], int],
    count_frames: Callable[[str], int],
) -> int:  # fmt: skip
    lines = [
        json.dumps(to_chatml(e, count_frames(e.audio), count_tokens(e.target)), ensure_ascii=False) + "\n"
        for e in examples
    ]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def hsk_eval_id(audio: str, row_id: str = "") -> str | None:
    """The HSK evaluation-bucket id a row carries (its id, else its audio file's name), or None."""
    for name in (row_id, Path(audio).stem):
        match = HSK_ID.match(name)
        if match and is_eval_id(match.group()):
            return match.group()
    return None


def _manifest_rows(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        audio, text = row.get("audio", row.get("wav")), row.get("text", row.get("zh"))
        if not audio or not text:
            raise ValueError(f"{path}: row {number}: needs 'audio' and 'text'")
        out.append((_resolve(str(audio), path.parent), str(text), str(row.get("id", row.get("key", "")))))
    return out


def read_manifest(path: str | Path) -> list[tuple[str, str]]:
    """An ASR manifest as JSON Lines {"audio": path, "text": Chinese transcript} ("wav" / "zh" also accepted)."""
    return [(audio, text) for audio, text, _ in _manifest_rows(Path(path))]


def read_training_manifest(path: str | Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(rows, dropped ids): read_manifest without the HSK evaluation sentences (see hsk_eval_id)."""
    kept, dropped = [], []
    for audio, text, row_id in _manifest_rows(Path(path)):
        held = hsk_eval_id(audio, row_id)
        if held is None:
            kept.append((audio, text))
        else:
            dropped.append(held)
    return kept, dropped


def drop_eval_examples(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """(rows, how many dropped): training rows whose audio is an HSK evaluation clip are left out."""
    kept = [e for e in examples if hsk_eval_id(e.audio) is None]
    return kept, len(examples) - len(kept)


@dataclass
class BuildReport:
    examples: list[Example]
    failed: list[tuple[str, str]]  # (audio, why) rows whose translation the teacher could not give


def build_task_rows(
    manifest: Sequence[tuple[str, str]], teacher: Translator, on_row: Callable[[], None] | None = None
) -> BuildReport:
    """Each (audio, transcript) -> a transcribe row (the runtime's Transcribe prompt, 语音转写成中文：) and a
    translate row whose English target is the teacher's translation of the transcript (sequence-level
    distillation). A transcript the teacher fails on keeps its transcribe row and is listed in `failed`."""
    transcribe = user_prompt(TaskMode.TRANSCRIBE)
    examples: list[Example] = []
    failed: list[tuple[str, str]] = []
    for audio, text in manifest:
        examples.append(Example(audio, transcribe, text, "transcribe"))
        try:
            english = teacher.translate(text, source_language="zh").text
        except TranslationFailed as exc:
            failed.append((audio, str(exc)))
        else:
            examples.append(Example(audio, TRANSLATE_TO_ENGLISH_PROMPT, english, "translate"))
        if on_row is not None:
            on_row()
    return BuildReport(examples, failed)


def parse_mix(text: str) -> dict[str, float]:
    """The mix "60/30/10" (transcribe / translate / instruction) -> normalised weights."""
    parts = [float(p) for p in text.split("/")]
    if len(parts) != len(KINDS) or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ValueError(f"mix must be three non-negative numbers transcribe/translate/instruction, got {text!r}")
    return {kind: p / sum(parts) for kind, p in zip(KINDS, parts, strict=True)}


class MixSampler:
    """Draws row indices: first a kind with the mix's weights (renormalised over the kinds present), then that
    kind's next row in a per-kind shuffled order (reshuffled when used up). Its whole state is JSON, so a resumed
    run draws exactly the rows the uninterrupted one would have."""

    def __init__(self, examples: Sequence[Example], mix: dict[str, float] | None = None, seed: int = 0) -> None:
        mix = mix or DEFAULT_MIX
        self.pools = {k: [i for i, e in enumerate(examples) if e.kind == k] for k in KINDS}
        self.kinds = [k for k in KINDS if self.pools[k] and mix.get(k, 0) > 0]
        if not self.kinds:
            raise ValueError("no training rows of a kind the mix asks for")
        weights = np.array([mix[k] for k in self.kinds], np.float64)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.orders: dict[str, list[int]] = {k: [] for k in self.kinds}
        self.positions = {k: 0 for k in self.kinds}

    def next(self) -> int:
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.weights))]
        if self.positions[kind] >= len(self.orders[kind]):
            self.orders[kind] = [int(i) for i in self.rng.permutation(self.pools[kind])]
            self.positions[kind] = 0
        self.positions[kind] += 1
        return self.orders[kind][self.positions[kind] - 1]

    def take(self, n: int) -> list[int]:
        return [self.next() for _ in range(n)]

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "orders": self.orders, "positions": self.positions}

    def restore(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.orders = {k: list(v) for k, v in state["orders"].items()}
        self.positions = dict(state["positions"])


def split_heldout(examples: Sequence[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded `fraction` of the audio files held out, with every row on them, so no
    validation audio is ever trained on under another task."""
    audios = sorted({e.audio for e in examples})
    count = max(1, round(fraction * len(audios))) if fraction > 0 and len(audios) > 1 else 0
    held = set(np.random.default_rng(seed).permutation(audios)[:count].tolist())
    return [e for e in examples if e.audio not in held], [e for e in examples if e.audio in held]
