"""Quality harness: the HSK zh->en evaluation set, BLEU/chrF/CER scoring, and runners that produce hypotheses.

Evaluation set. The `hsk-sentences-audio` package holds 4,354 Mandarin sentences (HSK levels 1-6, field `hsk_level`)
with English references. The 65 whose English is "placeholder" are dropped. A sentence belongs to the *eval* split
when `int(sha1(id).hexdigest(), 16) % 10 == 0` (443 sentences); every other one is the *dev* pool (3,846) for prompt
examples and tuning. The rule depends only on the id, so the split never changes when rows are added or reordered.

Files are JSON Lines:
- manifest: {"id", "level", "zh", "en", "pinyin"} (pinyin with tone numbers, as the package spells it);
- hypotheses: {"id", "hyp"} plus anything else (latency_s, error, ...). Missing ids score as the empty string and
  are counted; hypotheses for ids outside the manifest are counted as "extra" and ignored.

Metrics:
- translate: sacrebleu corpus BLEU (tokenizer "13a", mixed case, exp smoothing) and chrF (chrF2: char order 6,
  word order 0, beta 2) against `en`; the sacrebleu signatures are in the JSON.
- transcribe: jiwer character error rate against `zh`, corpus-level (total edits / total reference characters),
  after the same normalisation of reference and hypothesis: Unicode NFKC, lower case, then every character whose
  Unicode category is punctuation (P*), symbol (S*), separator (Z*) or control (C*) is removed -- so all spaces
  and Chinese/ASCII punctuation go. Traditional and simplified characters are NOT mapped onto each other.

Commands (`dfn-eval --help`):
    dfn-eval hsk-manifest --split eval -o hsk_eval.jsonl
    dfn-eval score --manifest hsk_eval.jsonl --hyp hyp.jsonl --task translate --by level --json scores.json
    dfn-eval whisper --manifest hsk_eval.jsonl --limit 60 -o whisper-out
    dfn-eval translate --manifest hsk_eval.jsonl --engines llama-cpp llama-cpp-server mlx -o translate-out
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("eval", "dev")
TASKS = ("translate", "transcribe")
LEVELS = range(1, 7)
EVAL_BUCKETS = 10  # one sentence in ten (by id hash) is held out for evaluation
BLEU_TOKENIZER = "13a"


# -- evaluation set ---------------------------------------------------------------------------------------------


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


# -- scoring ----------------------------------------------------------------------------------------------------


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
        out = {
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


# -- runners ----------------------------------------------------------------------------------------------------


def run_translator(
    manifest: list[dict[str, Any]] | str | Path,
    translate: Callable[[str], str],
    progress: bool = True,
    source_key: str = "zh",
) -> list[dict[str, Any]]:
    """Call `translate(source text)` per manifest row; record {"id", "hyp", "latency_s"} (wall seconds).

    A row whose call raises keeps going: it gets hyp "" and "error": "<ExceptionName>: message", and is counted
    as an error (and scored as empty) by `score`.
    """
    from tqdm import tqdm

    rows = read_jsonl(manifest) if isinstance(manifest, str | Path) else manifest
    out = []
    for row in tqdm(rows, desc="translate", unit="sent", disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        try:
            hyp, error = translate(row[source_key]), None
        except Exception as exc:  # one failing sentence must not end a long run; it is recorded instead
            hyp, error = "", f"{type(exc).__name__}: {exc}"
        rec = {"id": row["id"], "hyp": hyp, "latency_s": time.perf_counter() - t0}
        if error:
            rec["error"] = error
        out.append(rec)
    return out


class EspeakMandarin:
    """Robotic Mandarin from espeak-ng's `cmn-latn-pinyin` voice, fed the tone-numbered pinyin, at 16 kHz.

    Pinyin rather than characters: `-v cmn` reads characters as Latin spelled in English, and `cmn-latn-pinyin`
    given characters picks readings from its own dictionary, while the dataset's pinyin has the right readings.
    """

    def __init__(self, words_per_minute: int = 175) -> None:
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.wpm = words_per_minute

    def synthesize(self, pinyin: str) -> np.ndarray:
        import soundfile as sf

        from ..speech.audio import resample

        proc = subprocess.run(
            [self.binary, "-v", "cmn-latn-pinyin", "-s", str(self.wpm), "--stdout"],
            input=pinyin.encode("utf-8"),  # stdin, so text can never be read as an option
            capture_output=True,
            timeout=60,
            check=True,
        )
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return resample(samples, rate)


def run_whisper_on_espeak(
    manifest: list[dict[str, Any]],
    tasks: tuple[str, ...] = TASKS,
    cpu_threads: int = 2,
    words_per_minute: int = 175,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Whisper base (faster-whisper, int8, beam 5) on espeak-ng Mandarin of each row's pinyin, language "zh".

    Returns hypotheses per task; latency_s is the recognition time only (synthesis excluded), audio_s the length.
    """
    from tqdm import tqdm

    from ..speech.whisper import WhisperRecognizer

    voice = EspeakMandarin(words_per_minute)
    recognizer = WhisperRecognizer(cpu_threads=cpu_threads)
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in tasks}
    for row in tqdm(manifest, desc="whisper", unit="sent", disable=not progress, file=sys.stderr):
        samples = voice.synthesize(row["pinyin"])
        for task in tasks:
            t0 = time.perf_counter()
            text = recognizer.recognize(samples, task=task, language="zh").text
            latency = time.perf_counter() - t0
            out[task].append({"id": row["id"], "hyp": text, "latency_s": latency, "audio_s": samples.size / 16000})
    return out


# -- command line -----------------------------------------------------------------------------------------------


def _level_counts(rows: list[dict[str, Any]]) -> str:
    counts = {lv: sum(r["level"] == lv for r in rows) for lv in sorted({r["level"] for r in rows})}
    return ", ".join(f"HSK{lv}: {n}" for lv, n in counts.items())


def _write_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def cmd_hsk_manifest(opts: argparse.Namespace) -> None:
    rows = write_hsk_manifest(opts.output, opts.split)
    print(f"{opts.split}: {len(rows)} sentences ({_level_counts(rows)}) -> {opts.output}", file=sys.stderr)


def cmd_score(opts: argparse.Namespace) -> None:
    result = score(read_jsonl(opts.manifest), read_jsonl(opts.hyp), opts.task, opts.by)
    print(format_table(result))
    if opts.json:
        _write_json(result, opts.json)


def cmd_whisper(opts: argparse.Namespace) -> None:
    manifest = read_jsonl(opts.manifest)[:: opts.stride][: opts.limit or None]
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    hyps = run_whisper_on_espeak(manifest, tuple(opts.tasks), opts.cpu_threads, opts.wpm)
    elapsed = time.perf_counter() - t0
    label = f"Whisper base on espeak-ng robotic Mandarin ({opts.wpm} wpm), {len(manifest)} sentences"
    report: dict[str, Any] = {"label": label, "wall_s": elapsed, "sentences": len(manifest)}
    print(label)
    for task, rows in hyps.items():
        write_jsonl(rows, out_dir / f"whisper-{task}.jsonl")
        result = score(manifest, rows, task, opts.by)
        audio = sum(r["audio_s"] for r in rows)
        result["rtf"] = sum(r["latency_s"] for r in rows) / audio if audio else None
        report[task] = result
        print(format_table(result))
        print(f"real-time factor {result['rtf']:.2f} over {audio:.0f} s of audio\n")
    print(f"total wall time {elapsed:.0f} s (synthesis + all tasks) -> {out_dir}")
    _write_json(report, out_dir / "whisper-scores.json")


TRANSLATE_ENGINES = ("llama-cpp", "llama-cpp-server", "mlx")


def open_translator(engine: str, model: str, stack: contextlib.ExitStack) -> Any:
    """A translator for `dfn-eval translate`: in-process llama.cpp or MLX, or a llama.cpp server on localhost
    reached through the llm-fallback client (the server is stopped when `stack` closes)."""
    from ..translation.local import load_local_translator

    if engine != "llama-cpp-server":
        return load_local_translator(model, engine)
    from ..translation.llama_cpp import LlamaCppServer
    from ..translation.local import packaged_translator_gguf
    from ..translation.remote import RemoteTranslator

    server = stack.enter_context(LlamaCppServer(packaged_translator_gguf() if model == "packaged" else model))
    return stack.enter_context(RemoteTranslator(server.base_url, "local", "DFN_NO_KEY"))


def cmd_translate(opts: argparse.Namespace) -> None:
    from ..common.blas import ensure_fast_blas

    if "mlx" in opts.engines and opts.command_line:
        ensure_fast_blas()  # MLX on Linux needs OpenBLAS: re-executes this command with it preloaded
    manifest = read_jsonl(opts.manifest)[:: opts.stride][: opts.limit or None]
    if opts.source_hyp:  # cascade: translate an ASR's transcripts (e.g. whisper-transcribe.jsonl), not the text
        heard = {h["id"]: h.get("hyp") or "" for h in read_jsonl(opts.source_hyp)}
        manifest = [{**row, "zh": heard.get(row["id"], "")} for row in manifest if row["id"] in heard]
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": opts.model, "sentences": len(manifest), "engines": {}}
    for engine in opts.engines:
        with contextlib.ExitStack() as stack:
            t0 = time.perf_counter()
            translator = open_translator(engine, opts.model, stack)
            load_s = time.perf_counter() - t0
            translator.translate("你好。")  # warm-up, not scored
            rows = run_translator(manifest, lambda zh: translator.translate(zh).text)  # noqa: B023
        write_jsonl(rows, out_dir / f"translate-{engine}.jsonl")
        result = score(manifest, rows, "translate", opts.by)
        result["load_s"] = load_s
        report["engines"][engine] = result
        print(f"\n{engine} ({opts.model}), load {load_s:.1f} s")
        print(format_table(result))
    _write_json(report, out_dir / "translate-scores.json")
    print(f"\n-> {out_dir}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-eval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("hsk-manifest", help="write the HSK eval or dev split as a JSONL manifest")
    p.add_argument("--split", choices=SPLITS, default="eval")
    p.add_argument("-o", "--output", default="-", help="JSONL path, '-' for stdout (default)")
    p.set_defaults(func=cmd_hsk_manifest)

    p = sub.add_parser("score", help="BLEU/chrF (translate) or CER (transcribe) of a hypotheses file")
    p.add_argument("--manifest", required=True, help="JSONL with id, zh, en (and level)")
    p.add_argument("--hyp", required=True, help="JSONL with id, hyp (optionally latency_s, error)")
    p.add_argument("--task", choices=TASKS, default="translate")
    p.add_argument("--by", metavar="FIELD", help="also score per value of this manifest field, e.g. level")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("translate", help="text zh->en with local translators, scored per level, same run")
    p.add_argument("--manifest", required=True)
    p.add_argument("--engines", nargs="+", choices=TRANSLATE_ENGINES, default=list(TRANSLATE_ENGINES))
    p.add_argument("--model", default="packaged", help="packaged (default), a .gguf file, or an mlx-lm folder/id")
    p.add_argument("--source-hyp", metavar="JSONL", help="translate these transcripts (id, hyp) instead of `zh`")
    p.add_argument("--limit", type=int, default=0, help="first N sentences only (0 = all)")
    p.add_argument("--stride", type=int, default=1, help="every Nth sentence (a sample across all levels)")
    p.add_argument("--by", metavar="FIELD", default="level")
    p.add_argument("-o", "--output", default="translate-eval", help="directory for hypotheses and scores")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("whisper", help="baseline: Whisper base on espeak-ng Mandarin of the manifest's pinyin")
    p.add_argument("--manifest", required=True)
    p.add_argument("--limit", type=int, default=0, help="first N sentences only (0 = all)")
    p.add_argument("--stride", type=int, default=1, help="every Nth sentence (a sample across all levels)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--by", metavar="FIELD", default="level")
    p.add_argument("--wpm", type=int, default=175, help="espeak-ng speaking rate, words per minute")
    p.add_argument("--cpu-threads", type=int, default=2)
    p.add_argument("-o", "--output", default="whisper-eval", help="directory for hypotheses and scores")
    p.set_defaults(func=cmd_whisper)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Command line entry; called with an explicit argv (tests, other programs) it never re-executes the caller."""
    opts = parse_args(argv)
    opts.command_line = argv is None
    opts.func(opts)


if __name__ == "__main__":
    main()
