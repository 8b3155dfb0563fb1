"""The probe's results: a JSONL file that is appended to (a restarted probe keeps what it wrote and reads its
dataflow's lines back), write failures that are counted and reported instead of raised, and the summary of a run's
records (one final per segment, holes, errors by code, latency, restarts)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputFailed

Record = dict[str, Any]


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class ResultsFile:
    """One JSON line per record. A folder that cannot be created, a file that cannot be opened or a write that fails
    (read-only folder, disk full) is one OutputFailed line on stderr (then every 100th), never an exception."""

    def __init__(self, path: Path, run_id: str = "", restarted: bool = False) -> None:
        self.path, self.run_id, self.failures = path, run_id, 0
        self.earlier: list[Record] = self._earlier() if restarted and run_id else []
        self.file: Any = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if self._torn():  # a probe killed mid-line: the next record starts on a line of its own
                self.file.write("\n")
        except OSError as exc:
            self.failed(exc)

    def _torn(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                return f.seek(0, 2) > 0 and f.seek(-1, 2) >= 0 and f.read(1) != b"\n"
        except OSError:  # a device such as /dev/full cannot seek: nothing to mend
            return False

    def _earlier(self) -> list[Record]:
        """This run's records from before a restart (a torn last line is skipped)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        records = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("dataflow_id") == self.run_id:
                records.append(rec)
        return records

    def failed(self, exc: OSError) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 100 == 0:
            error = OutputFailed(f"cannot write {self.path}: {exc} ({self.failures} failures so far)")
            print(f"[probe] {error.code}: {error}", file=sys.stderr, flush=True)

    def write(self, rec: Record) -> None:
        if self.run_id:
            rec["dataflow_id"] = self.run_id
        if self.file is None:
            return self.failed(OSError("the file could not be opened"))
        try:
            self.file.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.file.flush()
        except OSError as exc:
            self.failed(exc)

    def close(self, summary: dict[str, Any]) -> None:
        try:
            if self.file is not None:
                self.file.close()
        except OSError as exc:
            self.failed(exc)
        summary["output_failures"] = self.failures
        try:
            self.path.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            self.failed(exc)
            summary["output_failures"] = self.failures


def summarize(records: list[Record]) -> dict[str, Any]:
    finals = [r for r in records if r.get("fin", True) and r.get("kind") in ("text", "error")]
    per_segment: Counter[tuple[Any, int]] = Counter(
        (r.get("session_id"), r["segment_id"]) for r in finals if isinstance(r.get("segment_id"), int)
    )  # stream errors (source, vad input) carry no segment id
    latencies = [r["latency_s"] for r in finals if r["kind"] == "text" and "latency_s" in r]
    rtfs = [r["rtf"] for r in finals if r["kind"] == "text" and "rtf" in r]
    sessions = {s for s, _ in per_segment}
    last = {s: max(i for t, i in per_segment if t == s) for s in sessions}
    return {
        "messages": sum(r.get("kind") in ("text", "error") for r in records),
        "segments": len(per_segment),
        "final_texts": sum(r["kind"] == "text" for r in finals),
        "transcripts": sum(r.get("kind") == "transcript" and r.get("fin", True) for r in records),
        "errors": dict(Counter(r.get("code", "?") for r in finals if r["kind"] == "error")),
        "segments_with_several_finals": [list(k) for k, n in per_segment.items() if n > 1],
        # ids are 0..n-1 per session: a hole is a segment that left the graph with neither text nor error
        "segments_missing": [[s, i] for s in sessions for i in range(last[s] + 1) if (s, i) not in per_segment],
        "latency_s": {
            "median": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies) if latencies else None,
        },
        "rtf": {"median": percentile(rtfs, 50), "p95": percentile(rtfs, 95)},  # model time / audio time
        "restarts": dict(Counter(str(r.get("node")) for r in records if r.get("kind") == "restart")),
    }
