"""dfn-funasr-bench: the flags, and main(), which measures the machine, runs each implementation in its own child
process and prints / writes the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ...common.blas import ensure_fast_blas
from ...common.settings import BACKENDS
from . import __doc__ as OVERVIEW
from .impls import IMPLS
from .machine import machine_info
from .plot import plot
from .report import print_report, ratios
from .roofline import floors, param_counts, roofline
from .runner import bench_impl, run_child
from .workload import DTYPES, model_args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-funasr-bench", description=(OVERVIEW or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 20.0], help="audio lengths (default 5 20)")
    parser.add_argument("--decode-tokens", type=int, default=15, help="tokens decoded per utterance, no EOS stop")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per length, after one warm-up")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32", help="weight dtype (fp32 is the fast one on Linux)")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS), help="implementations to run")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="auto",
        help="our model's compute backend (default auto: numpy where it applies on a CPU, else MLX)",
    )  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, runs in seconds (for tests)")
    parser.add_argument("--seed", type=int, default=0, help="random weights and audio")
    parser.add_argument("--json", metavar="PATH", help="write everything measured here")
    parser.add_argument("--plot", metavar="PNG", help="bar chart of the stage times (needs matplotlib)")
    parser.add_argument("--no-blas-reexec", action="store_true", help="do not restart with OpenBLAS preloaded")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)  # internal: run one --impl, write JSON
    opts = parser.parse_args(argv)
    if opts.decode_tokens < 2:
        parser.error("--decode-tokens must be at least 2 (decode time is the interval between tokens)")
    if opts.repeats < 1:
        parser.error("--repeats must be at least 1")
    return opts


def measure(opts: argparse.Namespace) -> dict[str, Any]:
    """Everything the report holds: the run's settings, the machine, its roofline and floors, and each
    implementation's numbers from its child process, with the same-run ratios against ours."""
    args = model_args(opts.tiny)
    counts = param_counts(args)
    roof = roofline(opts.tiny)
    report = {
        "config": {k: v for k, v in vars(opts).items() if k not in ("child", "json", "plot")},
        "machine": machine_info(),
        "roofline": roof,
        "params": counts,
        "weights_mb": sum(counts.values()) * DTYPES[opts.dtype].size / 2**20,
        "floors": floors(args, counts, roof, opts.dtype, opts.seconds, opts.decode_tokens),
        "results": {impl: run_child(impl, opts) for impl in opts.impl},
    }
    report["ratios"] = ratios(report)
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line entry. Re-executes with OpenBLAS preloaded on Linux unless --no-blas-reexec; called with an
    explicit argv (tests, other programs) it never re-executes the caller."""
    opts = parse_args(argv)
    if argv is None and not opts.no_blas_reexec:
        ensure_fast_blas()
    if opts.child:
        Path(opts.child).write_text(json.dumps(bench_impl(opts.impl[0], opts)))
        return
    report = measure(opts)
    print_report(report)
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {opts.json}")
    if opts.plot:
        plot(report, opts.plot)
