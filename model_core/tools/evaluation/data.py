"""The HSK evaluation set and the harness's files.

Evaluation set. The `hsk-sentences-audio` package holds 4,354 Mandarin sentences (HSK levels 1-6, field `hsk_level`)
with English references. The 65 whose English is "placeholder" are dropped. A sentence belongs to the *eval* split
when `int(sha1(id).hexdigest(), 16) % 10 == 0` (443 sentences); every other one is the *dev* pool (3,846) for prompt
examples and tuning. The rule depends only on the id, so the split never changes when rows are added or reordered.

Files are JSON Lines:
- manifest: {"id", "level", "zh", "en", "pinyin"} (pinyin with tone numbers, as the package spells it);
- hypotheses: {"id", "hyp"} plus anything else (latency_s, error, ...). Missing ids score as the empty string and
  are counted; hypotheses for ids outside the manifest are counted as "extra" and ignored.
Score reports are one indented JSON object.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPLITS = ("eval", "dev")
LEVELS = range(1, 7)
EVAL_BUCKETS = 10  # one sentence in ten (by id hash) is held out for evaluation


def is_eval_id(sentence_id: str) -> bool:
    """The held-out rule: sha1 of the id, as an integer, divisible by 10."""
    return int(hashlib.sha1(sentence_id.encode()).hexdigest(), 16) % EVAL_BUCKETS == 0


def build_hsk_manifest(split: str = "eval") -> list[dict[str, Any]]:
    """HSK 1-6 sentences of one split, placeholder translations dropped, in the package's order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    import hsk_sentences_audio

    rows = []
    for s in hsk_sentences_audio.load_sentences():
        sid, en = str(s["id"]), s["translation"]["en"].strip()
        if en.lower() == "placeholder" or s["hsk_level"] not in LEVELS:
            continue
        if is_eval_id(sid) != (split == "eval"):
            continue
        rows.append({"id": sid, "level": s["hsk_level"], "zh": s["chinese"], "en": en, "pinyin": s["pinyin_numbered"]})
    return rows


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    """One JSON object per line, UTF-8, Chinese kept readable. "-" writes to stdout."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if str(path) == "-":
        sys.stdout.write(lines)
    else:
        Path(path).write_text(lines, encoding="utf-8")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_hsk_manifest(path: str | Path, split: str = "eval") -> list[dict[str, Any]]:
    rows = build_hsk_manifest(split)
    write_jsonl(rows, path)
    return rows


def write_json(obj: Any, path: str | Path) -> None:
    """A report: indented JSON, UTF-8, Chinese kept readable."""
    Path(path).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
