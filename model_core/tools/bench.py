"""Speed benchmark: our MLX Fun-ASR-Nano vs mlx-audio's port, at the real shapes with random weights.

No checkpoint is needed: both models are built from the published architecture (SenseVoiceEncoderSmall 50 + 20
blocks, adaptor, Qwen3-0.6B) and filled with the same seeded random weights, so they run the identical workload.
Per implementation and audio length it reports medians (after one warm-up) of: front end, encoder + adaptor,
LLM prefill (time to the first token), decode ms/token and the total, plus peak RSS. Each implementation runs in
its own child process so one does not inflate the other's memory. The machine's roofline (fp32 GEMM rate, memory
copy bandwidth) is measured in the same run and turned into floors for each stage.

Decoding is forced to exactly --decode-tokens tokens: no EOS id is passed (ours: `generate(..., eos_token_ids=())`
with the repetition guard off; mlx-audio: its `generate_step` is consumed without checking for EOS). Prefill is the
time from the audio rows to the first token, so it includes any set-up the decode path does before that token.
Set DFN_DECODE=mlx to time our MLX decode path instead of the numpy one.

    python -m dora_funasr_nano.model_core.bench --seconds 5 20 --repeats 3 --json bench.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from time import perf_counter
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import qwen3
from tqdm import tqdm

from ..common.blas import ensure_fast_blas, openblas_loaded
from ..fun_asr_nano.adaptor import AdaptorArgs
from ..fun_asr_nano.api import FunAsrNano
from ..fun_asr_nano.encoder import EncoderArgs
from ..fun_asr_nano.frontend import FrontendConfig, lfr_length
from ..fun_asr_nano.generate import GenerationConfig, decoder_backend, generate
from ..fun_asr_nano.loading import AUDIO_PREFIXES, audio_weights_dtype
from ..fun_asr_nano.model import Model, ModelArgs
from ..fun_asr_nano.prompts import TaskMode, chat_prompt, user_prompt

IMPLS = ("ours", "ours-low-memory", "mlx-audio")
DTYPES = {"fp32": mx.float32, "bf16": mx.bfloat16}
SAMPLE_RATE = 16000

# What the Qwen3 tokenizer makes of chat_prompt(user_prompt(TaskMode.TRANSCRIBE)): 20 ids before the audio rows,
# 5 after. Fixed here so the benchmark needs no tokenizer files.
PREFIX_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198]
PREFIX_IDS += [105761, 46670, 61443, 12857, 104811, 5122]
SUFFIX_IDS = [151645, 198, 151644, 77091, 198]

QWEN3_0_6B = dict(
    model_type="qwen3", hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
    head_dim=128, intermediate_size=3072, rms_norm_eps=1e-6, vocab_size=151936, rope_theta=1e6,
    tie_word_embeddings=True, max_position_embeddings=40960,
)  # fmt: skip
QWEN3_TINY = QWEN3_0_6B | dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=64
)  # the vocabulary stays: the prompt ids need it


# -- the model under test -------------------------------------------------------------------------------------


def model_args(tiny: bool = False) -> ModelArgs:
    if tiny:
        encoder = EncoderArgs(output_size=16, attention_heads=4, linear_units=32, num_blocks=3, tp_blocks=2)
        adaptor = AdaptorArgs(encoder_dim=16, llm_dim=32, ffn_dim=24, n_layer=2, attention_heads=4)
        text = QWEN3_TINY
    else:  # Fun-ASR-Nano-2512 (design.md §3)
        encoder = EncoderArgs(
            input_size=560, output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, tp_blocks=20,
            kernel_size=11,
        )  # fmt: skip
        adaptor = AdaptorArgs(encoder_dim=512, llm_dim=1024, ffn_dim=2048, n_layer=2, attention_heads=8)
        text = QWEN3_0_6B
    return ModelArgs(FrontendConfig(), encoder, adaptor, qwen3.ModelArgs.from_dict(text))


def peer_config(args: ModelArgs):  # noqa: ANN201 - mlx-audio's FunASRNanoConfig
    """The same architecture as mlx-audio config objects. Its TextConfig defaults to Qwen3-1.7B: pass every size."""
    from mlx_audio.stt.models.fun_asr_nano.config import AdaptorConfig, FunASRNanoConfig, SenseVoiceEncoderConfig
    from mlx_audio.stt.models.qwen3_asr.config import TextConfig

    e, a, t = args.encoder, args.adaptor, args.text
    return FunASRNanoConfig(
        input_size=e.input_size,
        audio_encoder_conf=SenseVoiceEncoderConfig(
            output_size=e.output_size, attention_heads=e.attention_heads, linear_units=e.linear_units,
            num_blocks=e.num_blocks, tp_blocks=e.tp_blocks, kernel_size=e.kernel_size, sanm_shift=e.sanm_shift,
        ),
        audio_adaptor_conf=AdaptorConfig(
            downsample_rate=a.downsample_rate, encoder_dim=a.encoder_dim, llm_dim=a.llm_dim, ffn_dim=a.ffn_dim,
            n_layer=a.n_layer, attention_heads=a.attention_heads,
        ),
        text_config=TextConfig.from_dict(vars(t)),
    )  # fmt: skip


def fill_random(model: nn.Module, seed: int, dtype: mx.Dtype, audio_dtype: mx.Dtype | None = None) -> int:
    """Replace every parameter with seeded N(0, 0.02) (norm scales: 1 + N(0, 0.02)); returns the weight bytes.

    Each tensor's values depend only on (seed, name), and both models use the same names, so ours and mlx-audio's
    get identical weights. Largest tensors first, one at a time: the transient numpy copy then never adds more than
    the current tensor on top of what is already built, so peak RSS stays close to the weights themselves.
    """
    params = sorted(tree_flatten(model.parameters()), key=lambda kv: -kv[1].size)
    total = 0
    for name, like in params:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        values = rng.standard_normal(like.shape, dtype=np.float32)
        values *= 0.02
        if "norm" in name and name.endswith("weight"):
            values += 1.0
        to = audio_dtype if audio_dtype is not None and name.startswith(AUDIO_PREFIXES) else dtype
        weight = mx.array(values).astype(to)
        del values
        mx.eval(weight)
        model.load_weights([(name, weight)], strict=False)
        total += weight.nbytes
    return total


def synthetic_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like 16 kHz float32: a few amplitude-modulated harmonics plus noise (the content does not matter)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # ~syllable rate
    tone = sum(np.sin(2 * np.pi * f * t) / i for i, f in enumerate((180, 360, 720, 1440), 1))
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.1 * envelope * tone + 0.01 * noise).astype(np.float32)


class FixedTokenizer:
    """Stands in for the Qwen3 tokenizer: knows the transcribe prompt's two pieces and nothing else."""

    def __init__(self) -> None:
        chat = chat_prompt(user_prompt(TaskMode.TRANSCRIBE))
        self.ids = {chat.prefix: PREFIX_IDS, chat.suffix: SUFFIX_IDS}

    def encode(self, text: str) -> list[int]:
        return list(self.ids[text])


# -- one timed utterance per implementation ---------------------------------------------------------------------

Runner = Callable[[np.ndarray, int, bool], dict[str, float]]  # (audio, decode tokens, first prompt?) -> stages


def stage_times(t0: float, t1: float, t2: float, stamps: list[float]) -> dict[str, float]:
    """t0, t1, t2: start, features done, audio rows done; stamps: when each token came out. Prefill = time from
    the rows to the first token (prompt embedding included); decode = mean interval between the following tokens."""
    ms = 1e3
    return {
        "frontend_ms": (t1 - t0) * ms,
        "encoder_ms": (t2 - t1) * ms,
        "prefill_ms": (stamps[0] - t2) * ms,
        "decode_ms_per_token": (stamps[-1] - stamps[0]) / (len(stamps) - 1) * ms,
        "total_ms": (stamps[-1] - t0) * ms,
    }


def ours(args: ModelArgs, seed: int, dtype: mx.Dtype, low_memory: bool = False) -> tuple[Runner, dict[str, Any]]:
    model = Model(args)
    weight_bytes = fill_random(model, seed, dtype, audio_weights_dtype(dtype) if low_memory else None)
    asr = FunAsrNano(model, FixedTokenizer())
    prompt_text = user_prompt(TaskMode.TRANSCRIBE)

    def run(audio: np.ndarray, n_tokens: int, first_prompt: bool = False) -> dict[str, float]:
        if first_prompt:  # as the first utterance a process decodes: nothing to reuse
            asr.prompt_cache.clear()
        t0 = perf_counter()
        feats = asr.features(audio, max_audio_s=math.inf)
        t1 = perf_counter()
        rows = asr.audio_rows(feats)
        mx.eval(rows)
        t2 = perf_counter()
        stamps: list[float] = []
        prompt = asr.prompt_embeddings(rows, prompt_text)
        config = GenerationConfig(max_tokens=n_tokens, repetition_guard=False)
        on_token = lambda _: stamps.append(perf_counter())  # noqa: E731
        generate(model.llm, prompt, config, eos_token_ids=(), on_token=on_token, prompt_cache=asr.prompt_cache)
        mx.synchronize()  # generate_step leaves one step in flight: keep it out of the next measurement
        return {**stage_times(t0, t1, t2, stamps), "prompt_positions": prompt.shape[0], "audio_rows": rows.shape[0]}

    # which decode path generate(backend="auto") takes here (DFN_DECODE=mlx forces MLX's)
    backend = decoder_backend(model.llm)
    return run, {"weights_mb": weight_bytes / 2**20, "decode_backend": backend}


def mlx_audio(args: ModelArgs, seed: int, dtype: mx.Dtype) -> tuple[Runner, dict[str, Any]]:
    from mlx_audio.lm.generate import generate_step
    from mlx_audio.stt.models.fun_asr_nano import Model as PeerModel
    from mlx_audio.stt.models.fun_asr_nano.audio import prepare_audio

    model = PeerModel(peer_config(args))
    weight_bytes = fill_random(model, seed, dtype)
    model._tokenizer = FixedTokenizer()  # normally set by post_load_hook from the checkpoint's Qwen3 folder

    def run(audio: np.ndarray, n_tokens: int, first_prompt: bool = False) -> dict[str, float]:  # no prompt reuse
        # FunASRNano._build_inputs_embeds + _generate_single_chunk, split into stages
        t0 = perf_counter()
        feats, lengths, fake_len = prepare_audio(audio, model.config.frontend_conf)
        mx.eval(feats)
        t1 = perf_counter()
        encoded, encoded_lens = model.audio_encoder(feats, lengths)
        adapted, _ = model.audio_adaptor(encoded, encoded_lens)
        rows = adapted[:, :fake_len]
        mx.eval(rows)
        t2 = perf_counter()
        ids, begin = model._build_prompt_ids(fake_len, language="zh", hotwords=None, itn=True)
        embeds = model.llm.model.embed_tokens(ids)
        embeds = mx.concatenate([embeds[:, :begin], rows.astype(embeds.dtype), embeds[:, begin + fake_len :]], 1)
        stamps = [perf_counter() for _ in generate_step(ids[0], model, max_tokens=n_tokens, input_embeddings=embeds[0])]
        mx.synchronize()
        return {**stage_times(t0, t1, t2, stamps), "prompt_positions": ids.shape[1], "audio_rows": fake_len}

    return run, {"weights_mb": weight_bytes / 2**20, "decode_backend": "mlx"}


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
    build = {"ours": ours, "ours-low-memory": functools.partial(ours, low_memory=True), "mlx-audio": mlx_audio}[impl]
    t = perf_counter()
    run, info = build(model_args(opts.tiny), opts.seed, DTYPES[opts.dtype])
    setup_s = perf_counter() - t
    stages = {}
    progress = tqdm(total=len(opts.seconds) * (2 + opts.repeats), desc=impl, file=sys.stderr, leave=False)
    for seconds in opts.seconds:
        # new noise for every utterance: a repeated clip would let our prompt cache reuse its audio rows too
        runs = []
        for i in range(1 + opts.repeats):
            runs.append(run(synthetic_audio(seconds, opts.seed + i), opts.decode_tokens))
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


# -- roofline ---------------------------------------------------------------------------------------------------


def roofline(tiny: bool) -> dict[str, float]:
    """fp32 GEMM rate (n³ mx.matmul, best of 5) and copy bandwidth (numpy copy, read + write bytes, best of 5)."""
    n, copy_mb = (256, 64) if tiny else (1024, 512)
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a, b, a @ b)
    gemm_s = []
    for _ in range(5):
        t = perf_counter()
        mx.eval(a @ b)
        gemm_s.append(perf_counter() - t)
    src = np.ones(copy_mb * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy_s = []
    for _ in range(5):
        t = perf_counter()
        np.copyto(dst, src)
        copy_s.append(perf_counter() - t)
    return {
        "gemm_n": n,
        "gemm_gflops": 2 * n**3 / min(gemm_s) / 1e9,
        "copy_mb": copy_mb,
        "copy_gbps": 2 * src.nbytes / min(copy_s) / 1e9,
    }


def param_counts(args: ModelArgs) -> dict[str, int]:
    model = Model(args)  # MLX initialises lazily: counting costs no memory

    def count(module: nn.Module) -> int:
        return sum(v.size for _, v in tree_flatten(module.parameters()))

    return {"encoder": count(model.audio_encoder), "adaptor": count(model.audio_adaptor), "llm": count(model.llm)}


def encoder_flops(args: ModelArgs, t: int) -> float:
    """Multiply-adds × 2 of the encoder and adaptor over t LFR frames (matmuls, attention, FSMN taps)."""
    e, a = args.encoder, args.adaptor
    d = e.output_size

    def sanm(d_in: int) -> float:  # fused qkv, scores + mix, FSMN, out projection, FFN
        return 2 * t * (d_in * 3 * d + 2 * t * d + e.kernel_size * d + d * d + 2 * d * e.linear_units)

    t_a = -(-t // a.downsample_rate)
    h = a.llm_dim
    block = 2 * t_a * (4 * h * h + 2 * t_a * h + 2 * h * (h // 4))
    adaptor = 2 * t_a * (a.encoder_dim * a.downsample_rate * a.ffn_dim + a.ffn_dim * h) + a.n_layer * block
    return sanm(e.input_size) + (e.num_blocks - 1 + e.tp_blocks) * sanm(d) + adaptor


def floors(args: ModelArgs, counts: dict[str, int], roof: dict[str, float], dtype: str, opts) -> dict[str, Any]:  # noqa: ANN001
    """Lower bounds per stage: FLOPs / GEMM rate for encoder and prefill, bytes read / bandwidth for decode."""
    t = args.text
    embedding = t.vocab_size * t.hidden_size
    attn_width = t.num_attention_heads * t.head_dim
    kv_width = 2 * t.num_key_value_heads * t.head_dim  # K and V per position and layer
    itemsize = DTYPES[dtype].size
    out = {}
    for seconds in opts.seconds:
        t_lfr = lfr_length(int(seconds * SAMPLE_RATE), args.frontend)
        positions = len(PREFIX_IDS) + Model.audio_token_count(t_lfr) + len(SUFFIX_IDS)
        enc = encoder_flops(args, t_lfr)

        def prefill_flops(new: int, positions: int = positions) -> float:
            """every non-embedding weight once per new position, attention over all positions so far, and one
            output-layer row block for the last position"""
            per_position = counts["llm"] - embedding + t.num_hidden_layers * positions * attn_width
            return 2 * new * per_position + 2 * embedding

        prefill = prefill_flops(positions - len(PREFIX_IDS))  # ours reuse the chat template's keys after a first prompt
        prefill_first = prefill_flops(positions)
        context = positions + opts.decode_tokens / 2
        # each token reads every LLM weight once (the tied embedding as lm_head) and the KV cache so far
        decode_bytes = (counts["llm"] + t.num_hidden_layers * context * kv_width) * itemsize
        enc_ms = enc / roof["gemm_gflops"] / 1e6
        prefill_ms = prefill / roof["gemm_gflops"] / 1e6
        decode_ms = decode_bytes / roof["copy_gbps"] / 1e6
        out[f"{seconds:g}"] = {
            "lfr_frames": t_lfr,
            "prompt_positions": positions,
            "encoder_gflop": enc / 1e9,
            "encoder_ms": enc_ms,
            "prefill_gflop": prefill / 1e9,
            "prefill_ms": prefill_ms,
            "prefill_first_ms": prefill_first / roof["gemm_gflops"] / 1e6,
            "decode_bytes_per_token": decode_bytes,
            "decode_ms_per_token": decode_ms,
            "total_ms": enc_ms + prefill_ms + (opts.decode_tokens - 1) * decode_ms,
        }
    return out


# -- report -----------------------------------------------------------------------------------------------------


def blas_libraries() -> list[str]:
    """BLAS libraries mapped into this process (Linux): MLX's bundled reference BLAS, numpy's own OpenBLAS and,
    when preloaded, the system OpenBLAS (openblas-pthread/libblas.so.3) that MLX's GEMMs need to be fast."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return sorted({line.split()[-1] for line in maps if "blas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_lm": version("mlx-lm"),
        "mlx_audio": version("mlx-audio"),
        "openblas_loaded": openblas_loaded(),
        "blas_libraries": blas_libraries(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
    }


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


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Title, column headers and rows: for each audio length, one column per implementation and the floor."""
    cfg, results, floor = report["config"], report["results"], report["floors"]
    columns, getters = [], []
    for sec in floor:
        for impl, res in results.items():
            columns.append(f"{impl} {sec} s")
            rss = {"rss": res["peak_rss_mb"], "rss0": res.get("start_rss_mb")}
            getters.append(lambda key, r=res, s=sec, m=rss: m[key] if key in m else r["stages"][s].get(key))
        columns.append(f"floor {sec} s")
        getters.append(lambda key, s=sec: {"rss": report["weights_mb"]}.get(key) if "rss" in key else floor[s].get(key))
    rows = [[label, *(_fmt(get(key)) for get in getters)] for label, key in ROWS]
    m, roof = report["machine"], report["roofline"]
    title = (
        f"Fun-ASR-Nano, {'TINY shapes' if cfg['tiny'] else 'real shapes'}, random weights, {cfg['dtype']}, "
        f"{cfg['decode_tokens']} tokens, median of {cfg['repeats']}, times in ms\n{m['cpu']} ({m['cpu_count']} CPUs), "
        f"mlx {m['mlx']}, LD_PRELOAD={m['ld_preload'] or '(none)'}; "
        f"GEMM {roof['gemm_gflops']:.1f} GFLOP/s, copy {roof['copy_gbps']:.1f} GB/s (read+write)"
    )
    return title, ["stage", *columns], rows


RATIO_STAGES = ("encoder_ms", "prefill_ms", "decode_ms_per_token", "total_ms")


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


def plot(report: dict[str, Any], path: str) -> None:
    """Stage times, ours vs mlx-audio (and the floor), one group of bars per stage and audio length."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install matplotlib); skipped", file=sys.stderr)
        return
    stages = [("frontend_ms", "front end"), ("encoder_ms", "encoder+adaptor"), ("prefill_ms", "prefill")]
    stages.append(("decode_ms_per_token", "decode / token"))
    series = {impl: res["stages"] for impl, res in report["results"].items()} | {"floor": report["floors"]}
    labels = [f"{name}\n{sec} s" for sec in report["floors"] for _, name in stages]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.2), 4))
    width = 0.8 / len(series)
    for i, (name, per_len) in enumerate(series.items()):
        values = [per_len[sec].get(key, 0.0) for sec in report["floors"] for key, _ in stages]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"Fun-ASR-Nano stages ({report['config']['dtype']}, {report['machine']['cpu_count']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# -- command line -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-funasr-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 20.0], help="audio lengths (default 5 20)")
    parser.add_argument("--decode-tokens", type=int, default=15, help="tokens decoded per utterance, no EOS stop")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per length, after one warm-up")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32", help="weight dtype (fp32 is the fast one on Linux)")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS), help="implementations to run")
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


def run_child(impl: str, opts: argparse.Namespace) -> dict[str, Any]:
    """One implementation in a fresh process with this process's BLAS (children never re-exec on their own)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", __spec__.name, "--impl", impl, "--child", str(out), "--no-blas-reexec"]
        cmd += ["--seconds", *map(str, opts.seconds), "--decode-tokens", str(opts.decode_tokens)]
        cmd += ["--repeats", str(opts.repeats), "--dtype", opts.dtype, "--seed", str(opts.seed)]
        cmd += ["--tiny"] if opts.tiny else []
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    """Command line entry. Re-executes with OpenBLAS preloaded on Linux unless --no-blas-reexec; called with an
    explicit argv (tests, other programs) it never re-executes the caller."""
    opts = parse_args(argv)
    if argv is None and not opts.no_blas_reexec:
        ensure_fast_blas()
    if opts.child:
        Path(opts.child).write_text(json.dumps(bench_impl(opts.impl[0], opts)))
        return

    args = model_args(opts.tiny)
    counts = param_counts(args)
    roof = roofline(opts.tiny)
    report = {
        "config": {k: v for k, v in vars(opts).items() if k not in ("child", "json", "plot")},
        "machine": machine_info(),
        "roofline": roof,
        "params": counts,
        "weights_mb": sum(counts.values()) * DTYPES[opts.dtype].size / 2**20,
        "floors": floors(args, counts, roof, opts.dtype, opts),
        "results": {impl: run_child(impl, opts) for impl in opts.impl},
    }
    report["ratios"] = ratios(report)
    print_report(report)
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {opts.json}")
    if opts.plot:
        plot(report, opts.plot)


if __name__ == "__main__":
    main()
