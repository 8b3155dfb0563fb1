"""One run's summary (latency distributions, stage times, throughput, quality, memory, CPU, accounting) and the
Markdown tables of a whole report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .accounting import LOSS_CODES, AccountingError, account
from .metrics import STAGES, UtteranceResult, distribution, per_utterance
from .runner import GraphSpec, RunResult
from .workload import Workload

LATENCIES = ("ttfs_s", "first_output_s", "segment_latency_s")


def to_simplified(text: str) -> str:
    """Traditional -> Simplified Chinese (OpenCC t2s), so a Traditional transcript is not scored as wrong."""
    import opencc

    return str(opencc.OpenCC("t2s").convert(text))


def quality(workload: Workload, results: list[UtteranceResult]) -> dict[str, Any]:
    from ..evaluation.scoring import score

    rows = [{"id": u.id, "zh": u.zh, "en": u.en} for u in workload.utterances]
    out: dict[str, Any] = {}
    if any(r.hyp_en for r in results) and all(r["en"] for r in rows):
        hyps = [{"id": r.id, "hyp": r.hyp_en, "error": r.error} for r in results]
        overall = score(rows, hyps, "translate")["overall"]
        out |= {"bleu": overall["bleu"], "chrf": overall["chrf"]}
    if any(r.hyp_zh for r in results) and all(r["zh"] for r in rows):
        hyps = [{"id": r.id, "hyp": to_simplified(r.hyp_zh), "error": r.error} for r in results]
        out["cer"] = score(rows, hyps, "transcribe")["overall"]["cer"]
    return out


def accounting(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The graphs' invariant (accounting.py) on the run's records: lost = holes + reported losses."""
    try:
        acc = account(records, allow_losses=True)
    except AccountingError as exc:
        return {"ok": False, "violation": str(exc), "lost": None}
    codes = acc.codes()
    lost = sum(n for code, n in codes.items() if code in LOSS_CODES)
    return {"ok": lost == 0, "segments": acc.segments, "errors": dict(codes), "lost": lost}


def processing_window(records: list[dict[str, Any]], mode: str) -> float | None:
    """Seconds from the stream's start to the last final: the graph's working time on the audio."""
    finals = [r for r in records if r.get("fin", True) and "received_at" in r and "captured_at" in r]
    if not finals:
        return None
    first = min(finals, key=lambda r: r.get("segment_id", 0) or 0)
    start = first["captured_at"] - (first.get("end_s", 0.0) if mode == "realtime" else 0.0)
    return max(r["received_at"] for r in finals) - start


def summarize(spec: GraphSpec, run: RunResult, workload: Workload) -> dict[str, Any]:
    results, facts = per_utterance(run.records, workload.utterances)
    finals = [r for r in run.records if r.get("fin", True) and r.get("kind") == "text"]
    window = processing_window(run.records, run.mode)
    tokens, llm_s = sum(r.tokens for r in results), sum(r.llm_s for r in results)
    out: dict[str, Any] = {
        "graph": run.graph,
        "dataflow": str(spec.path),
        "env": spec.env,
        "mode": run.mode,
        "speed_only": spec.speed_only,
        "returncode": run.returncode,
        "wall_s": run.wall_s,
        "audio_s": workload.duration_s,
        "processing_s": window,
        "throughput_x": workload.duration_s / window if window else None,  # audio seconds per wall second
        "asr_rtf": distribution([r["rtf"] for r in finals if "rtf" in r]),
        "tokens_per_s": tokens / llm_s if llm_s else None,
        "latency": {key: distribution([getattr(r, key) for r in results]) for key in LATENCIES},
        "stages": {key: distribution([r.stages[key] for r in results if r.stages]) for key in STAGES},
        "quality": {} if spec.speed_only else quality(workload, results),
        "nodes": {
            n: {"peak_rss_mb": u.peak_rss_mb, "cpu_s": u.cpu_s, "rss_mb": u.rss_mb} for n, u in run.nodes.items()
        },
        "cpu_s_total": sum(u.cpu_s for u in run.nodes.values()),
        "accounting": accounting(run.records),
        "alignment": facts,
        "errors": dict(Counter(r.error for r in results if r.error)),
        "finals_by_translator": dict(Counter(str(r.get("translator", "-")) for r in finals)),
        "utterances": [vars(r) for r in results],
    }
    if run.returncode != 0:
        out["log_tail"] = run.log_tail
    return out


def _f(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """Latency, quality and cost tables, one row per graph and replay mode."""
    runs = report["runs"]
    lines = [
        f"Workload `{report['workload']['name']}`: {len(report['workload']['utterances'])} utterances, "
        f"{report['workload']['duration_s']:.0f} s of audio. Machine: {report['machine']['cpu']}, "
        f"{report['machine']['cpu_count']} CPUs, load {report['machine'].get('load_before', '?')}.",
        "",
    ]
    lines += [
        "| graph | replay | latency | median s | p90 s | p95 s | p99 s | max s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for key in LATENCIES if run["mode"] == "realtime" else ():
            d = run["latency"][key]
            lines.append(
                f"| {run['graph']} | {run['mode']} | {key[:-2]} | {_f(d.get('median'))} | {_f(d.get('p90'))} | "
                f"{_f(d.get('p95'))} | {_f(d.get('p99'))} | {_f(d.get('max'))} |"
            )
    lines += [
        "",
        "| graph | replay | vad s | asr s | translate s | other s (median) | throughput x | asr RTF | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        st = {k: run["stages"][k].get("median") for k in STAGES}
        lines.append(
            f"| {run['graph']} | {run['mode']} | {_f(st['vad_s'])} | {_f(st['asr_s'])} | {_f(st['translate_s'])} "
            f"| {_f(st['other_s'])} | {_f(run['throughput_x'], digits=1)} | "
            f"{_f(run['asr_rtf'].get('median'), digits=3)} | {_f(run['tokens_per_s'], digits=1)} |"
        )
    lines += [
        "",
        "| graph | replay | BLEU | chrF | CER % | segments | lost | errors | peak RSS MB (node) | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        q = run["quality"]
        bleu, chrf, cer = (
            ("speed-only",) * 3
            if run["speed_only"]
            else (_f(q.get("bleu"), digits=1), _f(q.get("chrf"), digits=1), _f(q.get("cer"), 100, 1))
        )
        acc = run["accounting"]
        rss = ", ".join(f"{n} {u['peak_rss_mb']:.0f}" for n, u in sorted(run["nodes"].items()))
        errors = ", ".join(f"{c} {n}" for c, n in acc.get("errors", {}).items()) or "none"
        lines.append(
            f"| {run['graph']} | {run['mode']} | {bleu} | {chrf} | {cer} | {acc.get('segments', '?')} | "
            f"{acc.get('lost', 'VIOLATED')} | {errors} | {rss} | {run['cpu_s_total']:.0f} |"
        )
    return "\n".join(lines) + "\n"
