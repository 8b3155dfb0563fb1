"""The machine's roofline, measured in the same run (fp32 GEMM rate, memory copy bandwidth), and the lower bound
it puts on each stage of the workload."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import mlx.core as mx
import numpy as np

from ...fun_asr_nano.frontend import lfr_length
from ...fun_asr_nano.model import Model, ModelArgs
from .workload import DTYPES, PREFIX_IDS, SAMPLE_RATE, SUFFIX_IDS, named_parameters


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
    parts = {"encoder": model.audio_encoder, "adaptor": model.audio_adaptor, "llm": model.llm}
    return {name: sum(v.size for v in named_parameters(part).values()) for name, part in parts.items()}


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


def floors(
    args: ModelArgs,
    counts: dict[str, int],
    roof: dict[str, float],
    dtype: str,
    seconds: list[float],
    decode_tokens: int,
) -> dict[str, Any]:
    """Lower bounds per stage and audio length: FLOPs / GEMM rate for encoder and prefill, bytes read / bandwidth
    for decode."""
    t = args.text
    embedding = t.vocab_size * t.hidden_size
    attn_width = t.num_attention_heads * t.head_dim
    kv_width = 2 * t.num_key_value_heads * t.head_dim  # K and V per position and layer
    itemsize = DTYPES[dtype].size
    out = {}
    for sec in seconds:
        t_lfr = lfr_length(int(sec * SAMPLE_RATE), args.frontend)
        positions = len(PREFIX_IDS) + Model.audio_token_count(t_lfr) + len(SUFFIX_IDS)
        enc = encoder_flops(args, t_lfr)

        def prefill_flops(new: int, positions: int = positions) -> float:
            """every non-embedding weight once per new position, attention over all positions so far, and one
            output-layer row block for the last position"""
            per_position = counts["llm"] - embedding + t.num_hidden_layers * positions * attn_width
            return 2 * new * per_position + 2 * embedding

        prefill = prefill_flops(positions - len(PREFIX_IDS))  # ours reuse the chat template's keys after a first prompt
        prefill_first = prefill_flops(positions)
        context = positions + decode_tokens / 2
        # each token reads every LLM weight once (the tied embedding as lm_head) and the KV cache so far
        decode_bytes = (counts["llm"] + t.num_hidden_layers * context * kv_width) * itemsize
        enc_ms = enc / roof["gemm_gflops"] / 1e6
        prefill_ms = prefill / roof["gemm_gflops"] / 1e6
        decode_ms = decode_bytes / roof["copy_gbps"] / 1e6
        out[f"{sec:g}"] = {
            "lfr_frames": t_lfr,
            "prompt_positions": positions,
            "encoder_gflop": enc / 1e9,
            "encoder_ms": enc_ms,
            "prefill_gflop": prefill / 1e9,
            "prefill_ms": prefill_ms,
            "prefill_first_ms": prefill_first / roof["gemm_gflops"] / 1e6,
            "decode_bytes_per_token": decode_bytes,
            "decode_ms_per_token": decode_ms,
            "total_ms": enc_ms + prefill_ms + (decode_tokens - 1) * decode_ms,
        }
    return out
