"""One implementation per child process, so one does not inflate the other's memory: the parent starts a child
per --impl (run_child), the child builds its model, times every audio length (bench_impl) and writes JSON back."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

import mlx.core as mx
from tqdm import tqdm

from ...common.blas import openblas_loaded
from .impls import build
from .workload import DTYPES, model_args, synthetic_audio

PACKAGE = __name__.rpartition(".")[0]  # `python -m PACKAGE` is the command itself (__main__.py)


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return None


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux max(VmHWM, VmRSS), not ru_maxrss: ru_maxrss carries the parent's RSS over
    fork + exec, so every child would report at least what the parent held; the kernel updates VmHWM lazily,
    hence the current RSS too."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            kb = [int(line.split()[1]) for line in f if line.startswith(("VmHWM:", "VmRSS:"))]
        return max(kb) / 2**10
    except (OSError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def bench_impl(impl: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Runs in the child process: build one implementation, warm up and time each audio length."""
    start_rss_mb = current_rss_mb()
    t = perf_counter()
    run, info = build(impl, model_args(opts.tiny), opts.seed, DTYPES[opts.dtype], opts.backend)
    setup_s = perf_counter() - t
    stages = {}
    progress = tqdm(total=len(opts.seconds) * (2 + opts.repeats), desc=impl, file=sys.stderr, leave=False)
    for seconds in opts.seconds:
        # new noise for every utterance: a repeated clip would let our prompt cache reuse its audio rows too
        runs = []
        for i in range(1 + opts.repeats):
            runs.append(run(synthetic_audio(seconds, opts.seed + i), opts.decode_tokens, False))
            progress.update()
        runs = runs[1:]  # the first is the warm-up
        stages[f"{seconds:g}"] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        # one more, as a process's first prompt would run (ours reuse the chat template's keys from then on)
        first = run(synthetic_audio(seconds, opts.seed + 1 + opts.repeats), opts.decode_tokens, True)
        stages[f"{seconds:g}"]["prefill_first_ms"] = first["prefill_ms"]
        progress.update()
    progress.close()
    return {
        "impl": impl,
        "stages": stages,
        **info,
        "peak_rss_mb": peak_rss_mb(),
        "start_rss_mb": start_rss_mb,
        "mlx_peak_mb": mx.get_peak_memory() / 2**20,
        "setup_s": setup_s,
        "openblas_loaded": openblas_loaded(),
    }


def run_child(impl: str, opts: argparse.Namespace) -> dict[str, Any]:
    """One implementation in a fresh process with this process's BLAS (children never re-exec on their own)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", PACKAGE, "--impl", impl, "--child", str(out), "--no-blas-reexec"]
        cmd += ["--seconds", *map(str, opts.seconds), "--decode-tokens", str(opts.decode_tokens)]
        cmd += ["--repeats", str(opts.repeats), "--dtype", opts.dtype, "--seed", str(opts.seed)]
        cmd += ["--backend", opts.backend, *(["--tiny"] if opts.tiny else [])]
        subprocess.run(cmd, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result
