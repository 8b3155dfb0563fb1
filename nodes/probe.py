"""probe: a sink that records every text/error it receives, per segment, with latencies.

Any number of inputs (name them as you like); a message whose metadata has `code` is an error, anything else is
text (or, with role "transcript", a transcript: recorded and printed, not counted as the segment's final). Each
message becomes one JSON line appended to DFN_PROBE_OUTPUT: input, kind, ids, text or code/message, fin,
received_at, latency_s = received_at - captured_at, dataflow_id; an upstream node's restart is a line of kind
`restart` (fin=false). Final texts are printed as they arrive; when the inputs close a summary (counts, errors by
code, latency and real-time-factor median/p95, segments with more than one final, restarts) is printed and written
next to the JSONL file as <name>.summary.json. A restarted probe reads its dataflow's lines back, so the summary
spans restarts; a file it cannot write (read-only folder, disk full) is an OutputFailed line on stderr, and the
probe goes on (model_core/common/results.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dora_funasr_nano.model_core.common.results import ResultsFile, summarize
from dora_funasr_nano.model_core.common.text import strip_controls

from .config import load_config
from .contract import Key, Port, now, read_error, read_text
from .events import FAILED, RESTARTED, input_events

OWN_FIELDS = ("input", "received_at", "kind", "text", "latency_s")


@dataclass
class ProbeConfig:
    """Latency/result recorder."""

    PREFIX: ClassVar[str] = "DFN_PROBE_"
    RENAMED: ClassVar[dict[str, str]] = {"output": "probe_output"}

    output: str = "probe-results.jsonl"  # JSONL path (relative to the node's working directory)
    quiet: bool = False  # do not print each final text


class Probe:
    def __init__(self, cfg: ProbeConfig, dataflow_id: str = "", restarted: bool = False) -> None:
        self.cfg = cfg
        self.path = Path(cfg.output)
        self.file = ResultsFile(self.path, dataflow_id, restarted)
        self.records: list[dict[str, Any]] = self.file.earlier

    def on_restart(self, node_id: str) -> None:
        rec = {"input": "", "kind": "restart", "node": node_id, "fin": False, "received_at": now()}
        self.file.write(rec)
        self.records.append(rec)
        print(f"[probe] {node_id} restarted", flush=True)

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
        else:  # a transcript beside the segment's English (Key.ROLE) is recorded, but is not its final result
            rec["kind"] = "transcript" if metadata.get(Key.ROLE) == Port.TRANSCRIPT else "text"
            rec["text"] = read_text(value)
        captured = metadata.get(Key.CAPTURED_AT)
        if isinstance(captured, int | float) and captured > 0:
            rec["latency_s"] = round(received - float(captured), 4)
        self.file.write(rec)
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
            role = " transcript" if rec["kind"] == "transcript" else ""
            line = f"[probe] {where}{span}{lat} [{rec.get(Key.LANGUAGE, '?')}{role}] {rec['text']}"
        print(strip_controls(line), flush=True)  # received text cannot drive the terminal (ANSI escapes)

    def summary(self) -> dict[str, Any]:
        return {**summarize(self.records), "output_failures": self.file.failures, "output": str(self.path)}

    def close(self) -> dict[str, Any]:
        summary = self.summary()
        self.file.close(summary)
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
    probe = Probe(cfg, str(node.dataflow_id() or ""), node.restart_count() > 0)
    if node.restart_count():  # what was sent to the probe while it restarted is lost: summary lists the holes
        probe.on_restart("probe")
    for input_id, value, metadata in input_events(node, restarts=True):
        if metadata is RESTARTED:
            probe.on_restart(input_id)
        elif metadata is not FAILED:
            probe.on_message(input_id, value, metadata)
    return probe.close()


def main() -> None:
    from dora import Node

    cfg = load_config(ProbeConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
