"""`dfn-train real-shape-step`: the cost of LoRA training steps of Fun-ASR-Nano at the real architecture.

The model is built from the published shapes (SenseVoiceEncoderSmall 50 + 20 blocks, adaptor, Qwen3-0.6B) with
seeded random weights (tools/bench/workload.py), so no checkpoint is needed. Each row is what training feeds the
LLM: the runtime's prompt with the audio rows of `--seconds` of synthetic audio, plus `--target-tokens` target
tokens. Measured: the time of one optimizer update (forward + backward through the frozen LLM into the adapters,
clipping, AdamW), after one warm-up update; MLX's peak allocation and the process's peak RSS. Cost does not depend
on the weights' values, only on their shapes.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from ...fun_asr_nano.api import FunAsrNano
from ...fun_asr_nano.lora import PRESETS, add_lora
from ...fun_asr_nano.model import Model
from ...fun_asr_nano.prompts import TaskMode, user_prompt
from ..bench.workload import FixedTokenizer, fill_random, model_args, synthetic_audio
from .batches import assemble, loss


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def real_shape_step(
    batch_size: int = 1, seconds: float = 5.0, target_tokens: int = 32, preset: str = "seed", repeats: int = 2,
    tiny: bool = False, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """One warm-up update, then `repeats` timed ones; returns the numbers (also the shapes used)."""
    t0 = time.perf_counter()
    model = Model(model_args(tiny=tiny))
    weight_bytes = fill_random(model, seed, mx.float32)
    asr = FunAsrNano(model, FixedTokenizer(), backend="mlx")
    audio_rows = asr.audio_rows(asr.features(synthetic_audio(seconds, seed)))
    mx.eval(audio_rows)
    load_s = time.perf_counter() - t0
    config = PRESETS[preset]
    add_lora(model.llm, config)
    rng = np.random.default_rng(seed)
    targets = [[int(t) for t in rng.integers(0, 150000, target_tokens)] for _ in range(batch_size)]
    prompt = user_prompt(TaskMode.TRANSCRIBE)  # the fixed tokenizer knows this prompt; cost is the same
    batch = assemble(asr, [audio_rows] * batch_size, [prompt] * batch_size, targets)
    optimizer = optim.AdamW(learning_rate=config.training.learning_rate)
    value_and_grad = nn.value_and_grad(model.llm, loss)
    model.llm.train()

    def update() -> float:
        start = time.perf_counter()
        (value, _), grads = value_and_grad(model.llm, *batch.arrays())
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model.llm, grads)
        mx.eval(value, model.llm.trainable_parameters(), optimizer.state)
        return time.perf_counter() - start

    warm_up = update()
    times = [update() for _ in range(repeats)]
    step_s = statistics.median(times)
    trainable = sum(int(v.size) for v in dict(tree_flatten(model.llm.trainable_parameters(), destination={})).values())
    return {
        "architecture": "tiny" if tiny else "Fun-ASR-Nano-2512 (SenseVoiceEncoderSmall + adaptor + Qwen3-0.6B)",
        "preset": preset, "lora_rank": config.rank, "lora_keys": list(config.keys),
        "trainable_parameters": trainable, "weight_bytes": weight_bytes,
        "batch_size": batch_size, "audio_s": seconds, "audio_rows": int(audio_rows.shape[0]),
        "sequence_length": int(batch.embeddings.shape[1]), "target_tokens": batch.tokens,
        "positions": batch_size * int(batch.embeddings.shape[1]),
        "build_s": load_s, "warm_up_step_s": warm_up, "step_s": step_s, "step_times_s": times,
        "target_tokens_per_s": batch.tokens / step_s,
        "positions_per_s": batch_size * int(batch.embeddings.shape[1]) / step_s,
        "mlx_peak_memory_mb": mx.get_peak_memory() / 1e6, "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip
