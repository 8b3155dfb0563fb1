"""Scores of hypotheses against a manifest, overall and per group (e.g. HSK level), and their text table.

Metrics:
- translate: sacrebleu corpus BLEU (tokenizer "13a", mixed case, exp smoothing) and chrF (chrF2: char order 6,
  word order 0, beta 2) against `en`; the sacrebleu signatures are in the JSON.
- transcribe: jiwer character error rate against `zh`, corpus-level (total edits / total reference characters),
  after the same normalisation of reference and hypothesis: Unicode NFKC, lower case, then every character whose
  Unicode category is punctuation (P*), symbol (S*), separator (Z*) or control (C*) is removed -- so all spaces
  and Chinese/ASCII punctuation go. Traditional and simplified characters are NOT mapped onto each other.
A hypothesis missing for an id scores as the empty string; one with an "error" field is counted as an error.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

TASKS = ("translate", "transcribe")
BLEU_TOKENIZER = "13a"


def normalize_zh(text: str) -> str:
    """CER normalisation: NFKC, lower case, drop punctuation, symbols, spaces and control characters."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZC")


def _metrics(task: str, refs: list[str], hyps: list[str]) -> dict[str, Any]:
    if task == "translate":
        from sacrebleu.metrics import BLEU, CHRF

        bleu, chrf = BLEU(tokenize=BLEU_TOKENIZER), CHRF()
        return {"bleu": bleu.corpus_score(hyps, [refs]).score, "chrf": chrf.corpus_score(hyps, [refs]).score}
    import jiwer

    refs, hyps = [normalize_zh(r) for r in refs], [normalize_zh(h) for h in hyps]
    if not all(refs):
        raise ValueError("a reference is empty after normalisation; CER is undefined for it")
    out = jiwer.process_characters(refs, hyps)
    return {
        "cer": out.cer,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "ref_chars": out.hits + out.substitutions + out.deletions,
    }


def signatures(task: str) -> dict[str, str]:
    if task == "translate":
        from sacrebleu.metrics import BLEU, CHRF

        bleu, chrf = BLEU(tokenize=BLEU_TOKENIZER), CHRF()
        bleu.corpus_score(["a"], [["a"]])  # sacrebleu only knows the reference count after one call
        chrf.corpus_score(["a"], [["a"]])
        return {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}
    return {"cer": f"jiwer {metadata.version('jiwer')} corpus CER; NFKC, lower case, Unicode P*/S*/Z*/C* removed"}


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    """Median, 95th percentile (numpy linear interpolation) and mean, in seconds."""
    if not latencies:
        return {"n": 0}
    return {
        "n": len(latencies),
        "median_s": statistics.median(latencies),
        "p95_s": float(np.percentile(latencies, 95)),
        "mean_s": statistics.fmean(latencies),
    }


def score(
    manifest: list[dict[str, Any]], hyps: list[dict[str, Any]], task: str = "translate", by: str | None = None
) -> dict[str, Any]:
    """Score hypotheses (keyed by id) against the manifest, overall and per value of the manifest field `by`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    ref_key = "en" if task == "translate" else "zh"
    ids = [r["id"] for r in manifest]
    if len(set(ids)) != len(ids):
        raise ValueError("the manifest repeats an id")
    by_id: dict[str, dict[str, Any]] = {}
    for h in hyps:
        if h["id"] in by_id:
            raise ValueError(f"two hypotheses for id {h['id']!r}")
        by_id[h["id"]] = h
    missing = [i for i in ids if i not in by_id]
    extra = sorted(set(by_id) - set(ids))

    def block(rows: list[dict[str, Any]]) -> dict[str, Any]:
        refs = [r[ref_key] for r in rows]
        texts = [by_id.get(r["id"], {}).get("hyp") or "" for r in rows]  # missing -> ""
        found = [by_id[r["id"]] for r in rows if r["id"] in by_id]
        out: dict[str, Any] = {
            "n": len(rows),
            "missing": sum(r["id"] not in by_id for r in rows),
            "errors": sum(bool(h.get("error")) for h in found),
            "empty": sum(not t.strip() for t in texts),
        }
        out |= _metrics(task, refs, texts)
        latencies = [h["latency_s"] for h in found if isinstance(h.get("latency_s"), int | float)]
        if latencies:
            out["latency"] = latency_summary(latencies)
        return out

    result: dict[str, Any] = {
        "task": task,
        "reference": ref_key,
        "signatures": signatures(task),
        "overall": block(manifest),
        "missing_ids": missing,
        "extra_hypotheses": len(extra),
    }
    if by:
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in manifest:
            groups.setdefault(r[by], []).append(r)
        result["by"] = by
        result["groups"] = {str(k): block(groups[k]) for k in sorted(groups, key=lambda k: (str(type(k)), k))}
    return result


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of one `score` result."""
    cols: tuple[str, ...]
    fmt: Callable[[dict[str, Any]], tuple[str, ...]]
    if result["task"] == "translate":
        cols, fmt = ("BLEU", "chrF"), lambda b: (f"{b['bleu']:.1f}", f"{b['chrf']:.1f}")
    else:
        cols, fmt = ("CER %",), lambda b: (f"{100 * b['cer']:.1f}",)
    header = (result.get("by", "group"), "n", "missing", "errors", *cols, "p50 s", "p95 s")
    rows = [(k, b) for k, b in result.get("groups", {}).items()] + [("all", result["overall"])]
    lines = []
    for name, b in rows:
        lat = b.get("latency", {})
        p50 = f"{lat['median_s']:.2f}" if lat.get("n") else "-"
        p95 = f"{lat['p95_s']:.2f}" if lat.get("n") else "-"
        lines.append((name, str(b["n"]), str(b["missing"]), str(b["errors"]), *fmt(b), p50, p95))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    render = lambda row: "  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True))  # noqa: E731
    out = [f"task={result['task']} (reference: {result['reference']})", render(header)]
    out += [render(row) for row in lines]
    if result["missing_ids"]:
        out.append(f"{len(result['missing_ids'])} ids had no hypothesis and were scored as empty strings")
    if result["extra_hypotheses"]:
        out.append(f"{result['extra_hypotheses']} hypotheses name ids outside the manifest (ignored)")
    return "\n".join(out)
