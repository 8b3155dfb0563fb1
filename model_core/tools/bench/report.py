"""The printed report: one table (a column per implementation and audio length, plus the floor) and the same-run
ratios of every implementation against ours. rich is optional: without it the table is plain text."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

ROWS = (  # (label, stage key); times in ms
    ("front end", "frontend_ms"),
    ("encoder+adaptor", "encoder_ms"),
    ("prefill (to token 1)", "prefill_ms"),  # later prompts: ours reuse the chat template's keys
    ("prefill, first prompt", "prefill_first_ms"),
    ("prompt positions", "prompt_positions"),
    ("decode per token", "decode_ms_per_token"),
    ("total", "total_ms"),
    ("peak RSS MB", "rss"),  # floor column: the weights
    ("RSS before the model MB", "rss0"),  # interpreter + imported libraries
)
RATIO_STAGES = ("encoder_ms", "prefill_ms", "decode_ms_per_token", "total_ms")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def _measured(result: dict[str, Any], sec: str, key: str) -> float | None:
    if key == "rss":
        return result["peak_rss_mb"]
    if key == "rss0":
        return result.get("start_rss_mb")
    return result["stages"][sec].get(key)


def _floor(report: dict[str, Any], sec: str, key: str) -> float | None:
    if "rss" in key:  # what the weights alone take; nothing before the model
        return report["weights_mb"] if key == "rss" else None
    return report["floors"][sec].get(key)


def _title(report: dict[str, Any]) -> str:
    cfg, m, roof = report["config"], report["machine"], report["roofline"]
    backends = {impl: result["backends"] for impl, result in report["results"].items()}
    used = ", ".join(f"{impl} {b['encoder']}/{b['decoder']}" for impl, b in backends.items())
    return (
        f"Fun-ASR-Nano, {'TINY shapes' if cfg['tiny'] else 'real shapes'}, random weights, {cfg['dtype']}, "
        f"{cfg['decode_tokens']} tokens, median of {cfg['repeats']}, times in ms\n{m['cpu']} ({m['cpu_count']} CPUs), "
        f"mlx {m['mlx']}, LD_PRELOAD={m['ld_preload'] or '(none)'}; "
        f"GEMM {roof['gemm_gflops']:.1f} GFLOP/s, copy {roof['copy_gbps']:.1f} GB/s (read+write)\n"
        f"--backend {cfg['backend']}, encoder/decoder: {used}"
    )


def table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Title, column headers and rows: for each audio length, one column per implementation and the floor."""
    columns: list[str] = []
    getters: list[Callable[[str], float | None]] = []
    for sec in report["floors"]:
        for impl, result in report["results"].items():
            columns.append(f"{impl} {sec} s")
            getters.append(partial(_measured, result, sec))
        columns.append(f"floor {sec} s")
        getters.append(partial(_floor, report, sec))
    rows = [[label, *(_fmt(get(key)) for get in getters)] for label, key in ROWS]
    return _title(report), ["stage", *columns], rows


def ratios(report: dict[str, Any], baseline: str = "ours") -> dict[str, dict[str, dict[str, float]]]:
    """Every other implementation's stage times over the baseline's, per audio length: numbers from one run of
    this command, so they compare what the run-to-run drift of a shared machine does not let single times do."""
    results = report["results"]
    if baseline not in results:
        return {}
    base = results[baseline]["stages"]
    return {
        impl: {sec: {k: res["stages"][sec][k] / base[sec][k] for k in RATIO_STAGES} for sec in base}
        for impl, res in results.items()
        if impl != baseline
    }


def print_report(report: dict[str, Any]) -> None:
    print_table(report)
    for impl, per_length in report.get("ratios", {}).items():
        cells = "; ".join(
            f"{sec} s: total {r['total_ms']:.2f}x, encoder {r['encoder_ms']:.2f}x, prefill {r['prefill_ms']:.2f}x, "
            f"decode {r['decode_ms_per_token']:.2f}x"
            for sec, r in per_length.items()
        )
        print(f"{impl} / ours (this run): {cells}")


def print_table(report: dict[str, Any]) -> None:
    title, header, rows = table(report)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(title)
        for row in [header, *rows]:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            print("  ".join(cells))
        return
    out = Table(title=title)
    for i, name in enumerate(header):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    console = Console()
    console.width = max(console.width, 24 + 15 * (len(header) - 1))  # rich falls back to 80 columns when piped
    console.print(out)
