"""Quality harness: the HSK zh->en evaluation set, BLEU/chrF/CER scoring, and runners that produce hypotheses.

The `dfn-eval` command line (`dfn-eval --help`); the split rule and file formats are in `data`, the metrics in
`scoring`, the runners in `runs`:
    dfn-eval hsk-manifest --split eval -o hsk_eval.jsonl
    dfn-eval score --manifest hsk_eval.jsonl --hyp hyp.jsonl --task translate --by level --json scores.json
    dfn-eval whisper --manifest hsk_eval.jsonl --limit 60 -o whisper-out
    dfn-eval translate --manifest hsk_eval.jsonl --engines llama-cpp llama-cpp-server mlx -o translate-out
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from .data import SPLITS, read_jsonl, write_hsk_manifest, write_json, write_jsonl
from .runs import TRANSLATE_ENGINES, open_translator, run_translator, run_whisper_on_espeak
from .scoring import TASKS, format_table, score


def _level_counts(rows: list[dict[str, Any]]) -> str:
    counts = {lv: sum(r["level"] == lv for r in rows) for lv in sorted({r["level"] for r in rows})}
    return ", ".join(f"HSK{lv}: {n}" for lv, n in counts.items())


def _sample(opts: argparse.Namespace) -> list[dict[str, Any]]:
    """The manifest rows a run uses: every `--stride`th, then the first `--limit` (0: all)."""
    return read_jsonl(opts.manifest)[:: opts.stride][: opts.limit or None]


def cmd_hsk_manifest(opts: argparse.Namespace) -> None:
    rows = write_hsk_manifest(opts.output, opts.split)
    print(f"{opts.split}: {len(rows)} sentences ({_level_counts(rows)}) -> {opts.output}", file=sys.stderr)


def cmd_score(opts: argparse.Namespace) -> None:
    result = score(read_jsonl(opts.manifest), read_jsonl(opts.hyp), opts.task, opts.by)
    print(format_table(result))
    if opts.json:
        write_json(result, opts.json)


def cmd_whisper(opts: argparse.Namespace) -> None:
    manifest = _sample(opts)
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
    write_json(report, out_dir / "whisper-scores.json")


def cmd_translate(opts: argparse.Namespace) -> None:
    from ...common.blas import ensure_fast_blas

    if "mlx" in opts.engines and opts.command_line:
        ensure_fast_blas()  # MLX on Linux needs OpenBLAS: re-executes this command with it preloaded
    manifest = _sample(opts)
    if opts.source_hyp:  # cascade: translate an ASR's transcripts (e.g. whisper-transcribe.jsonl), not the text
        heard = {h["id"]: h.get("hyp") or "" for h in read_jsonl(opts.source_hyp)}
        manifest = [{**row, "zh": heard.get(row["id"], "")} for row in manifest if row["id"] in heard]
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": opts.model, "lora": opts.lora, "sentences": len(manifest), "engines": {}}
    for engine in opts.engines:
        with contextlib.ExitStack() as stack:
            t0 = time.perf_counter()
            translator = open_translator(engine, opts.model, stack, opts.lora, opts.threads or None)
            load_s = time.perf_counter() - t0
            translator.translate("你好。")  # warm-up, not scored
            rows = run_translator(manifest, lambda zh: translator.translate(zh).text)  # noqa: B023
        write_jsonl(rows, out_dir / f"translate-{engine}.jsonl")
        result = score(manifest, rows, "translate", opts.by)
        result["load_s"] = load_s
        report["engines"][engine] = result
        print(f"\n{engine} ({opts.model}{', lora ' + opts.lora if opts.lora else ''}), load {load_s:.1f} s")
        print(format_table(result))
    write_json(report, out_dir / "translate-scores.json")
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
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all cores; use 1 beside other work)")
    p.add_argument("--lora", default="", help="LoRA adapter: 'trained' (dfn-train-translator's), a file or folder")
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
