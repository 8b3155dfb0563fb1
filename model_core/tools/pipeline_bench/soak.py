"""dfn-bench soak: a long replay (the dev workload repeated to >= --minutes) through one file graph, faster than
real time by default, and what must not change over it:
- segments in (the VAD's segment ids) vs out (one final text or one typed error each), lost = 0 (accounting.py);
- RSS of each node after warm-up (the first sample after the first final) and at the end, and the growth in %;
- p95 of the per-segment latency and of the asr compute time over the first and the last 5 minutes of audio
  (stream time), to show drift;
- the segments against a reference: the same VAD (default settings) run in-process over the whole file, which is
  what a real-time replay cuts too. Fast replay must give the same segments (start, end), or typed loss errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import workload as wl
from .fake_llm import FAKE_KEY, FakeLLMServer
from .runner import GraphSpec, RunResult, run_graph
from .summary import accounting

WINDOW_S = 300.0  # first / last 5 minutes of audio


def rss_growth(run: RunResult) -> dict[str, dict[str, float]]:
    finals = [r["received_at"] for r in run.records if r.get("fin", True) and "received_at" in r]
    warm_t = (min(finals) - run.started_at) if finals else 0.0
    out = {}
    for node, usage in run.nodes.items():
        after = [rss for t, rss in usage.rss_mb if t >= warm_t] or [rss for _, rss in usage.rss_mb]
        if after:
            out[node] = {
                "warm_mb": after[0],
                "end_mb": after[-1],
                "peak_mb": max(after),
                "growth_pct": 100 * (after[-1] - after[0]) / after[0] if after[0] else 0.0,
            }
    return out


def vad_reference(audio_path: Path, finals: list[dict[str, Any]]) -> dict[str, Any]:
    """The graph's segments (start_s, end_s of each final text or error, to the ms) vs the in-process VAD's over
    the same file."""
    from ...speech.audio import load_audio
    from ...speech.vad import SileroVad, SpeechSegmenter

    segmenter = SpeechSegmenter(SileroVad())
    want = {(round(s.start_s, 3), round(s.end_s, 3)) for s in [*segmenter.push(load_audio(audio_path)),
                                                                *segmenter.flush()]}  # fmt: skip
    got = {(round(float(r["start_s"]), 3), round(float(r["end_s"]), 3)) for r in finals if "end_s" in r}
    return {"segments": len(want), "same": want == got, "missing": sorted(want - got)[:20],
            "extra": sorted(got - want)[:20]}  # fmt: skip


def p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def drift(records: list[dict[str, Any]], duration_s: float, window_s: float = WINDOW_S) -> dict[str, Any]:
    finals = [r for r in records if r.get("fin", True) and r.get("kind") == "text" and "end_s" in r]
    first = [r for r in finals if r["end_s"] <= window_s]
    last = [r for r in finals if r["end_s"] >= duration_s - window_s]
    pick = lambda rs, key: [float(r[key]) for r in rs if isinstance(r.get(key), int | float)]  # noqa: E731
    return {
        "window_s": window_s,
        "first": {
            "n": len(first),
            "latency_p95_s": p95(pick(first, "latency_s")),
            "asr_p95_s": p95(pick(first, "asr_s")),
        },
        "last": {"n": len(last), "latency_p95_s": p95(pick(last, "latency_s")), "asr_p95_s": p95(pick(last, "asr_s"))},
    }


def fake_llm_report(server: FakeLLMServer, records: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """What went to the fake server, which translator answered each final text, and whether the dummy key
    leaked into any file the run wrote (the server must have seen it, as a bearer token)."""
    by: dict[str, int] = {}
    for r in records:
        if r.get("kind") == "text" and r.get("fin", True):
            by[str(r.get("translator"))] = by.get(str(r.get("translator")), 0) + 1
    leaked = [p.name for p in workdir.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    return {"requests": server.requests, "finals_by_translator": by,
            "key_sent": f"Bearer {FAKE_KEY}" in server.auth_headers, "key_in_outputs": leaked}  # fmt: skip


def soak(opts: argparse.Namespace) -> dict[str, Any]:
    root = Path(opts.root) if opts.root else None
    base = wl.build_hsk(opts.n, opts.voice, opts.seed, root)
    long = wl.repeat(base, opts.minutes, root)
    spec = GraphSpec.parse(opts.graph)
    out = Path(opts.out)
    extra = {"DFN_SOURCE_CHUNK_MS": str(opts.chunk_ms)} if opts.chunk_ms else {}
    mode = "realtime" if opts.realtime else "fast"
    workdir = out / f"soak-{spec.label}-{mode}"
    print(f"[dfn-bench soak] {spec.label} ({mode}) on {long.name}: {long.duration_s / 60:.1f} min", file=sys.stderr)
    server = FakeLLMServer() if opts.fake_llm else None
    if server:  # the graph's llm-fallback talks to it, with a dummy key (never a real one)
        extra |= {"DFN_LLM_BASE_URL": server.url, "OPENAI_API_KEY": FAKE_KEY, "DFN_LLM_API_KEY_ENV": "OPENAI_API_KEY"}
    try:
        run = run_graph(spec, long.audio, workdir, opts.realtime, opts.timeout, extra)
    finally:
        if server:
            server.close()
    acc = accounting(run.records)
    finals = [r for r in run.records if r.get("fin", True) and r.get("kind") in ("text", "error")
              and isinstance(r.get("segment_id"), int)]  # fmt: skip  (a unified graph's transcripts are not finals)
    report = {
        "graph": spec.label,
        "mode": mode,
        "chunk_ms": opts.chunk_ms or None,
        "audio_s": long.duration_s,
        "wall_s": run.wall_s,
        "returncode": run.returncode,
        "speed_x": long.duration_s / run.wall_s,
        "segments_in": acc.get("segments"),
        "finals_out": len(finals),
        "lost": acc.get("lost"),
        "accounting": acc,
        "rss": rss_growth(run),
        "drift": drift(run.records, long.duration_s, min(WINDOW_S, long.duration_s / 3)),
        "vad_reference": vad_reference(long.audio, finals),
    }
    if server:
        report["fake_llm"] = fake_llm_report(server, run.records, workdir)
    if run.returncode:
        report["log_tail"] = run.log_tail
    (out / f"soak-{spec.label}-{mode}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


def add_parser(sub: Any) -> None:
    s = sub.add_parser("soak", help="replay >= MINUTES of speech through one graph; segments, RSS, latency drift")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--graph", default="dataflows/file_whisper_translate.yml", help="as for `run --graph`")
    s.add_argument("--voice", choices=wl.VOICES, default="espeak")
    s.add_argument("--n", type=int, default=40, help="HSK dev sentences of the repeated workload")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chunk-ms", type=int, default=0, help="DFN_SOURCE_CHUNK_MS (0: the graph's)")
    s.add_argument("--realtime", action="store_true", help="replay in real time (default: as fast as possible)")
    s.add_argument("--out", default="bench-report")
    s.add_argument("--root", help="folder of the workloads (default $DFN_CACHE_DIR/bench/workloads)")
    s.add_argument("--timeout", type=float, default=4 * 3600)
    s.add_argument(
        "--fake-llm", action="store_true", help="start a local fake OpenAI-compatible server for the llm-fallback"
    )
    s.set_defaults(func=soak)
