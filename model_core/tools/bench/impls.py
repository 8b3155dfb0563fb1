"""The implementations under test, each timing one utterance in stages: ours (optionally with bf16 audio weights,
"ours-low-memory") and mlx-audio's port, built on the same workload."""

from __future__ import annotations

import math
from collections.abc import Callable
from time import perf_counter
from typing import Any

import mlx.core as mx
import numpy as np

from ...fun_asr_nano.api import FunAsrNano
from ...fun_asr_nano.generate import GenerationConfig, generate
from ...fun_asr_nano.loading import audio_weights_dtype
from ...fun_asr_nano.model import Model, ModelArgs
from ...fun_asr_nano.prompts import TaskMode, user_prompt
from .workload import FixedTokenizer, fill_random

IMPLS = ("ours", "ours-low-memory", "mlx-audio")

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


def build(impl: str, args: ModelArgs, seed: int, dtype: mx.Dtype, backend: str) -> tuple[Runner, dict[str, Any]]:
    """One of IMPLS with random weights -> its runner and what to report about it (weights, backends used).
    `backend` (auto | mlx | numpy) is our model's; mlx-audio computes in MLX only."""
    if impl == "mlx-audio":
        return mlx_audio(args, seed, dtype)
    if impl not in IMPLS:
        raise ValueError(f"implementation must be one of {', '.join(IMPLS)}, got {impl!r}")
    return ours(args, seed, dtype, backend, low_memory=impl == "ours-low-memory")


def ours(
    args: ModelArgs, seed: int, dtype: mx.Dtype, backend: str = "auto", low_memory: bool = False
) -> tuple[Runner, dict[str, Any]]:
    model = Model(args)
    weight_bytes = fill_random(model, seed, dtype, audio_weights_dtype(dtype) if low_memory else None)
    asr = FunAsrNano(model, FixedTokenizer(), backend=backend)  # chooses the backends once, as load() does
    prompt_text = user_prompt(TaskMode.TRANSCRIBE)

    def run(audio: np.ndarray, n_tokens: int, first_prompt: bool = False) -> dict[str, float]:
        if first_prompt:  # as the first utterance a process decodes: nothing to reuse
            asr.prompt_cache.clear()
        t0 = perf_counter()
        feats = asr.features(audio, max_audio_s=math.inf)
        t1 = perf_counter()
        rows = asr.audio_rows(feats)  # on asr.backends.encoder
        mx.eval(rows)
        t2 = perf_counter()
        stamps: list[float] = []
        prompt = asr.prompt_embeddings(rows, prompt_text)
        config = GenerationConfig(max_tokens=n_tokens, repetition_guard=False)
        generate(
            model.llm, prompt, config, eos_token_ids=(), on_token=lambda _: stamps.append(perf_counter()),
            backend=asr.backends.decoder, prompt_cache=asr.prompt_cache,
        )  # fmt: skip
        mx.synchronize()  # generate_step leaves one step in flight: keep it out of the next measurement
        return {**stage_times(t0, t1, t2, stamps), "prompt_positions": prompt.shape[0], "audio_rows": rows.shape[0]}

    used = {"encoder": asr.backends.encoder, "decoder": asr.backends.decoder}
    return run, {"weights_mb": weight_bytes / 2**20, "decode_backend": used["decoder"], "backends": used}


def peer_config(args: ModelArgs) -> Any:  # mlx-audio's FunASRNanoConfig
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

    used = {"encoder": "mlx", "decoder": "mlx"}
    return run, {"weights_mb": weight_bytes / 2**20, "decode_backend": "mlx", "backends": used}
