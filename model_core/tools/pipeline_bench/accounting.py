"""The graphs' invariant, checked on what the probe recorded: every speech segment leaves as exactly one final text
or one typed error with its ids, and no segment or audio went missing silently."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOSS_CODES = ("AudioDropped", "SegmentDropped")


class AccountingError(AssertionError):
    """The invariant does not hold (an AssertionError, so a test that checks it fails as an assertion)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise AccountingError(message)


@dataclass
class Accounting:
    finals: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # (session, segment) -> records
    stream_errors: list[dict[str, Any]] = field(default_factory=list)  # errors of no segment (source, VAD input)
    transcripts: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # unified graph's Chinese

    @property
    def segments(self) -> int:
        return len(self.finals)

    def codes(self) -> Counter[str]:
        return Counter(r["code"] for rs in self.finals.values() for r in rs if r["kind"] == "error") + Counter(
            r["code"] for r in self.stream_errors
        )

    def texts(self) -> list[str]:
        return [r["text"] for _, rs in sorted(self.finals.items()) for r in rs if r["kind"] == "text"]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def account(records: list[dict[str, Any]], allow_losses: bool = False) -> Accounting:
    """Check the invariant on probe records (a probe JSONL read with read_records) and return what was counted.

    - each (session_id, segment_id) with any final record has exactly one: one text or one error;
    - segment ids of a session are 0..n-1 with no hole (the VAD numbers them that way), so a segment that never
      reached the probe shows up as a hole;
    - unless `allow_losses`, no AudioDropped / SegmentDropped error (a loss that was reported, not silent);
    - a transcript (kind "transcript", sent beside the English of one model) is not a final: at most one per
      segment, and only for a segment that has its final.
    """
    acc = Accounting()
    for rec in records:
        if not rec.get("fin", True):
            continue
        if rec.get("kind") == "transcript":
            acc.transcripts.setdefault((str(rec.get("session_id")), int(rec["segment_id"])), []).append(rec)
            continue
        if "segment_id" in rec and rec["segment_id"] is not None:
            acc.finals.setdefault((str(rec.get("session_id")), int(rec["segment_id"])), []).append(rec)
        elif rec["kind"] == "error":
            acc.stream_errors.append(rec)
        else:
            raise AccountingError(f"a final text without a segment_id: {rec}")
    doubles = {key: [r["kind"] for r in rs] for key, rs in acc.finals.items() if len(rs) != 1}
    _check(not doubles, f"segments with more than one final: {doubles}")
    several = [key for key, rs in acc.transcripts.items() if len(rs) != 1]
    _check(not several, f"segments with more than one transcript: {several}")
    orphans = sorted(set(acc.transcripts) - set(acc.finals))
    _check(not orphans, f"transcripts of segments without a final: {orphans}")
    by_session: dict[str, set[int]] = {}
    for session, segment in acc.finals:
        by_session.setdefault(session, set()).add(segment)
    for session, ids in by_session.items():
        holes = sorted(set(range(max(ids) + 1)) - ids)
        _check(not holes, f"session {session}: segments {holes} left the graph with neither a text nor an error")
    if not allow_losses:
        losses = {code: n for code, n in acc.codes().items() if code in LOSS_CODES}
        _check(not losses, f"messages were lost on the way: {losses}")
    return acc
