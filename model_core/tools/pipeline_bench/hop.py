"""dfn-bench hop: what one dora hop costs. A sender node sends audio messages (float32 16 kHz, 1 s and 10 s) to a
receiver node under `dora run`: 5 warm-up ones, then `--count` paced ones (one every 200 ms: latency = receive -
send wall clock), then `--count` back to back (throughput: MB/s and messages/s, first send to last receive)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .metrics import distribution
from .runner import dora_env

MODULE = "dora_funasr_nano.model_core.tools.pipeline_bench.hop"
WARM_UP = 5  # paced messages not counted: the receiver may still be starting


def dataflow(seconds: float, count: int, out: Path) -> dict[str, Any]:
    node = lambda role, *args: {"path": sys.executable, "args": f"-m {MODULE} {role} " + " ".join(args)}  # noqa: E731
    return {
        "nodes": [
            {
                "id": "sender",
                **node("send", str(seconds), str(count)),
                "inputs": {"tick": "dora/timer/millis/200"},
                "outputs": ["audio"],
            },
            {
                "id": "receiver",
                **node("receive", str(out)),
                "inputs": {"audio": {"source": "sender/audio", "queue_size": 1000, "queue_policy": "backpressure"}},
            },
        ]
    }


def send(seconds: float, count: int) -> None:
    import pyarrow as pa
    from dora import Node

    node, payload, sent = Node(), pa.array(np.zeros(int(seconds * 16000), np.float32)), 0
    for event in node:
        if event["type"] != "INPUT":
            break
        if sent < WARM_UP + count:  # paced: latency (the first few only while the receiver starts)
            phase = "warm-up" if sent < WARM_UP else "paced"
            node.send_output("audio", payload, {"sent_at": time.time(), "phase": phase, "i": sent})
            sent += 1
        else:  # back to back: throughput
            for i in range(count):
                node.send_output("audio", payload, {"sent_at": time.time(), "phase": "burst", "i": i})
            break


def receive(out: str) -> None:
    from dora import Node

    with open(out, "w") as f:
        for event in Node():
            if event["type"] == "INPUT":
                meta = event["metadata"]
                rec = {
                    "phase": meta["phase"],
                    "sent_at": meta["sent_at"],
                    "received_at": time.time(),
                    "bytes": event["value"].nbytes,
                }
                f.write(json.dumps(rec) + "\n")
            elif event["type"] == "STOP":
                break


def measure(seconds: float, count: int) -> dict[str, Any]:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out, graph = Path(tmp) / "hop.jsonl", Path(tmp) / "hop.yml"
        graph.write_text(yaml.safe_dump(dataflow(seconds, count, out)))
        subprocess.run(
            ["dora", "run", str(graph)], env=dora_env({}), cwd=tmp, check=True, capture_output=True, timeout=600
        )
        recs = [json.loads(line) for line in out.read_text().splitlines()]
    paced = [r for r in recs if r["phase"] == "paced"]
    burst = [r for r in recs if r["phase"] == "burst"]
    span = max(r["received_at"] for r in burst) - min(r["sent_at"] for r in burst) if burst else 0.0
    return {
        "audio_s": seconds,
        "bytes": int(seconds * 16000 * 4),
        "received": len(recs),
        "sent": WARM_UP + 2 * count,
        "latency_ms": {
            k: v * 1000 if k != "n" else v
            for k, v in distribution([r["received_at"] - r["sent_at"] for r in paced]).items()
        },
        "burst_mb_per_s": sum(r["bytes"] for r in burst) / 2**20 / span if span else None,
        "burst_messages_per_s": len(burst) / span if span else None,
    }


def hop(opts: argparse.Namespace) -> dict[str, Any]:
    report = {f"{s:g}s": measure(s, opts.count) for s in opts.seconds}
    print(json.dumps(report, indent=2))
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def add_parser(sub: Any) -> None:
    h = sub.add_parser("hop", help="latency and throughput of one dora hop with 1 s / 10 s audio messages")
    h.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0])
    h.add_argument("--count", type=int, default=20)
    h.add_argument("--json", help="write the figures here")
    h.set_defaults(func=hop)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    send(float(rest[0]), int(rest[1])) if role == "send" else receive(rest[0])
