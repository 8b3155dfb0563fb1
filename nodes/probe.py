"""probe: a sink that records every text/error it receives, per segment, with latencies.

Any number of inputs (name them as you like); a message whose metadata has `code` is an error, anything else is
text. Each message becomes one JSON line in DFN_PROBE_OUTPUT: input, kind, ids, text or code/message, fin,
received_at, latency_s = received_at - captured_at. Final texts are printed as they arrive; when the inputs close
a summary (counts, errors by code, latency and real-time-factor median/p95, segments with more than one
final) is printed and written next to the JSONL file as <name>.summary.json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dora_funasr_nano.model_core.common.text import strip_controls

from .config import load_config
from .contract import Key, now, read_error, read_text
from .events import input_events

OWN_FIELDS = ("input", "received_at", "kind", "text", "latency_s")


@dataclass
class ProbeConfig:
    """Latency/result recorder."""

    PREFIX: ClassVar[str] = "DFN_PROBE_"
    RENAMED: ClassVar[dict[str, str]] = {"output": "probe_output"}

    output: str = "probe-results.jsonl"  # JSONL path (relative to the node's working directory)
    quiet: bool = False  # do not print each final text


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Probe:
    def __init__(self, cfg: ProbeConfig) -> None:
        self.cfg = cfg
        self.path = Path(cfg.output)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.records: list[dict[str, Any]] = []

    def on_message(self, input_id: str, value: Any, metadata: dict[str, Any]) -> dict[str, Any]:
        received = now()
        rec: dict[str, Any] = {"input": input_id, "received_at": received}
        # a foreign node's metadata cannot overwrite the probe's own fields (kind, text, latency_s, ...)
        rec.update({k: v for k, v in metadata.items() if k not in (Key.TIMESTAMP, Key.PRIMITIVE, *OWN_FIELDS)})
        if Key.CODE in metadata:
            rec["kind"] = "error"
            try:
                body = read_error(value)
                rec.update({k: v for k, v in body.items() if k not in OWN_FIELDS} if isinstance(body, dict) else {})
            except (ValueError, TypeError, AttributeError):
                rec[Key.MESSAGE] = read_text(value)[:1000]
        else:
            rec["kind"] = "text"
            rec["text"] = read_text(value)
        captured = metadata.get(Key.CAPTURED_AT)
        if isinstance(captured, int | float) and captured > 0:
            rec["latency_s"] = round(received - float(captured), 4)
        self.file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.file.flush()
        self.records.append(rec)
        if not self.cfg.quiet and rec.get(Key.FIN, True):
            self._print(rec)
        return rec

    @staticmethod
    def _print(rec: dict[str, Any]) -> None:
        segment = rec.get(Key.SEGMENT_ID)
        where = f"{rec.get(Key.SESSION_ID, '?')}#{'-' if segment is None else segment}"
        s = lambda v: f"{v:.2f}" if isinstance(v, int | float) else str(v)  # noqa: E731 - foreign metadata: anything
        span = f" {s(rec[Key.START_S])}-{s(rec[Key.END_S])}s" if Key.START_S in rec and Key.END_S in rec else ""
        lat = f" latency {s(rec['latency_s'])}s" if "latency_s" in rec else ""
        if rec["kind"] == "error":
            line = f"[probe] {where}{span}{lat} ERROR {rec.get(Key.CODE)}: {rec.get(Key.MESSAGE)}"
        else:
            line = f"[probe] {where}{span}{lat} [{rec.get(Key.LANGUAGE, '?')}] {rec['text']}"
        print(strip_controls(line), flush=True)  # received text cannot drive the terminal (ANSI escapes)

    def summary(self) -> dict[str, Any]:
        finals = [r for r in self.records if r.get(Key.FIN, True)]
        per_segment: dict[tuple, int] = {}
        for r in finals:
            if isinstance(r.get(Key.SEGMENT_ID), int):  # stream errors (source, vad input) carry none
                key = (r.get(Key.SESSION_ID), r[Key.SEGMENT_ID])
                per_segment[key] = per_segment.get(key, 0) + 1
        latencies = [r["latency_s"] for r in finals if r["kind"] == "text" and "latency_s" in r]
        rtfs = [r[Key.RTF] for r in finals if r["kind"] == "text" and Key.RTF in r]
        errors: dict[str, int] = {}
        for r in finals:
            if r["kind"] == "error":
                errors[r.get(Key.CODE, "?")] = errors.get(r.get(Key.CODE, "?"), 0) + 1
        return {
            "messages": len(self.records),
            "segments": len(per_segment),
            "final_texts": sum(r["kind"] == "text" for r in finals),
            "errors": errors,
            "segments_with_several_finals": [list(k) for k, n in per_segment.items() if n > 1],
            # ids are 0..n-1 per session: a hole is a segment that left the graph with neither text nor error
            "segments_missing": [[s, i] for s in {k[0] for k in per_segment} for i in range(
                1 + max(k[1] for k in per_segment if k[0] == s)) if (s, i) not in per_segment],  # fmt: skip
            "latency_s": {
                "median": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "max": max(latencies) if latencies else None,
            },
            "rtf": {"median": percentile(rtfs, 50), "p95": percentile(rtfs, 95)},  # model time / audio time
            "output": str(self.path),
        }

    def close(self) -> dict[str, Any]:
        self.file.close()
        summary = self.summary()
        self.path.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        lat = summary["latency_s"]
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}s"  # noqa: E731
        print(
            f"[probe] summary: {summary['segments']} segments, {summary['final_texts']} texts, "
            f"errors {summary['errors'] or 'none'}, latency median {fmt(lat['median'])} p95 {fmt(lat['p95'])} "
            f"-> {self.path}",
            flush=True,
        )
        if summary["segments_missing"]:
            print(f"[probe] WARNING no result for {summary['segments_missing']}", flush=True)
        if summary["segments_with_several_finals"]:
            print(f"[probe] WARNING several finals for {summary['segments_with_several_finals']}", flush=True)
        return summary


def run(node: Any, cfg: ProbeConfig) -> dict[str, Any]:
    probe = Probe(cfg)
    for input_id, value, metadata in input_events(node):
        probe.on_message(input_id, value, metadata)
    return probe.close()


def main() -> None:
    from dora import Node

    cfg = load_config(ProbeConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
