"""Per-utterance figures of one run, from the probe's records and the workload's timeline.

Alignment: every final record carries the stream times of its segment (start_s, end_s). A segment belongs to the
utterance its span overlaps most (in stream seconds); a segment that overlaps none is counted as `extra` (noise the
VAD took for speech). An utterance's hypothesis is the text of its segments in order; one with no segment is
`missed` and scores as the empty string.

Clock: `origin` is the wall-clock time of stream second 0, the median over final records of captured_at - end_s
(the VAD dates a segment's last sample on the source's clock). Times below are wall-clock seconds:
- ttfs_s: end of the utterance's speech (origin + end_s of the workload) -> its last final English received by the
  probe; SimulEval's EndOffset for one sentence, the "time to final segment" of voice-agent STT benchmarks;
- first_output_s: end of speech -> the first message (partial or final) of any of its segments (negative: a
  partial arrived before the speaker stopped);
- segment_latency_s: the probe's latency_s, the segment's last sample (VAD padding included) -> final;
- stages: vad_s = the VAD's decision (segmented_at) - end of speech; asr_s, the asr's compute time; translate_s, the
  text translator's; other_s = ttfs - those (queues, transport, waiting behind earlier segments).
In fast replay nothing waits for the stream clock, so ttfs/first output are time in the queue, not latency; the
report shows throughput and compute times for that mode.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .workload import Utterance

STAGES = ("vad_s", "asr_s", "translate_s", "other_s")
PERCENTILES = (50, 90, 95, 99)


@dataclass
class UtteranceResult:
    id: str
    segments: list[int] = field(default_factory=list)
    hyp_en: str = ""
    hyp_zh: str = ""
    error: str = ""
    ttfs_s: float | None = None
    first_output_s: float | None = None
    segment_latency_s: float | None = None
    stages: dict[str, float | None] = field(default_factory=dict)  # None: not measured
    tokens: int = 0
    llm_s: float = 0.0


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign(spans: dict[int, tuple[float, float]], utts: list[Utterance]) -> tuple[dict[int, int], list[int]]:
    """segment id -> index of the utterance it overlaps most; and the segments that overlap none."""
    owner, extra = {}, []
    for seg, (s0, s1) in spans.items():
        best = max(range(len(utts)), key=lambda i: overlap(s0, s1, utts[i].start_s, utts[i].end_s), default=None)
        if best is None or overlap(s0, s1, utts[best].start_s, utts[best].end_s) <= 0:
            extra.append(seg)
        else:
            owner[seg] = best
    return owner, sorted(extra)


def stream_origin(finals: list[dict[str, Any]]) -> float | None:
    offsets = [r["captured_at"] - r["end_s"] for r in finals if "captured_at" in r and "end_s" in r]
    return statistics.median(offsets) if offsets else None


def per_utterance(records: list[dict[str, Any]], utts: list[Utterance]) -> tuple[list[UtteranceResult], dict[str, Any]]:
    """The results of one run (one session), and its alignment facts (extra segments, missed utterances)."""
    finals = [r for r in records if r.get("fin", True) and isinstance(r.get("segment_id"), int)]
    first_seen: dict[int, float] = {}
    for r in records:
        if isinstance(r.get("segment_id"), int):
            first_seen[r["segment_id"]] = min(first_seen.get(r["segment_id"], r["received_at"]), r["received_at"])
    spans = {r["segment_id"]: (float(r.get("start_s", 0.0)), float(r.get("end_s", 0.0))) for r in finals}
    owner, extra = assign(spans, utts)
    origin = stream_origin(finals)
    by_seg = {r["segment_id"]: r for r in finals}
    results = [UtteranceResult(u.id) for u in utts]
    for seg in sorted(owner):
        res, rec = results[owner[seg]], by_seg[seg]
        res.segments.append(seg)
        if rec["kind"] == "error":
            res.error = res.error or str(rec.get("code"))
            continue
        text, language = str(rec.get("text", "")), rec.get("language")
        if language == "en":
            res.hyp_en = f"{res.hyp_en} {text}".strip()
            res.hyp_zh += str(rec.get("source_text", ""))
        else:
            res.hyp_zh += text
        res.tokens += int(rec.get("tokens", 0) or 0)
        res.llm_s += float(rec.get("llm_s", 0.0) or 0.0)
    for res, utt in zip(results, utts, strict=True):
        if not res.segments:
            continue
        last = max(res.segments, key=lambda s: by_seg[s]["received_at"])
        rec = by_seg[last]
        res.segment_latency_s = rec.get("latency_s")
        if origin is None:
            continue
        speech_end = origin + utt.end_s
        res.ttfs_s = rec["received_at"] - speech_end
        res.first_output_s = min(first_seen[s] for s in res.segments) - speech_end
        stages = {
            "vad_s": rec["segmented_at"] - speech_end if "segmented_at" in rec else None,  # a vad that does not say
            "asr_s": float(rec.get("asr_s", 0.0) or 0.0),
            "translate_s": float(rec.get("translate_s", 0.0) or 0.0),
        }
        stages["other_s"] = res.ttfs_s - sum(v for v in stages.values() if v is not None)
        res.stages = stages
    facts = {
        "segments": len(spans),
        "extra_segments": extra,
        "missed_utterances": [r.id for r in results if not r.segments],
        "origin_known": origin is not None,
    }
    return results, facts


def distribution(values: Sequence[float | None]) -> dict[str, Any]:
    """n, median, p90, p95, p99, max, mean (numpy linear interpolation) of the values that are not None."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(vals)}
    for q in PERCENTILES:
        out["median" if q == 50 else f"p{q}"] = float(np.percentile(vals, q))
    out["max"], out["mean"] = max(vals), statistics.fmean(vals)
    return out
