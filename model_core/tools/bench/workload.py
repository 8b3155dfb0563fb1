"""The workload both implementations run: the model shapes, seeded random weights, synthetic audio and the
transcribe prompt's token ids."""

from __future__ import annotations

import zlib
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import qwen3

from ...fun_asr_nano.adaptor import AdaptorArgs
from ...fun_asr_nano.encoder import EncoderArgs
from ...fun_asr_nano.frontend import FrontendConfig
from ...fun_asr_nano.loading import AUDIO_PREFIXES
from ...fun_asr_nano.model import ModelArgs
from ...fun_asr_nano.prompts import TaskMode, chat_prompt, user_prompt

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


def model_args(tiny: bool = False) -> ModelArgs:
    if tiny:
        encoder = EncoderArgs(output_size=16, attention_heads=4, linear_units=32, num_blocks=3, tp_blocks=2)
        adaptor = AdaptorArgs(encoder_dim=16, llm_dim=32, ffn_dim=24, n_layer=2, attention_heads=4)
        text = QWEN3_TINY
    else:  # Fun-ASR-Nano-2512: SenseVoiceEncoderSmall (50 + 20 blocks), adaptor, Qwen3-0.6B
        encoder = EncoderArgs(
            input_size=560, output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, tp_blocks=20,
            kernel_size=11,
        )  # fmt: skip
        adaptor = AdaptorArgs(encoder_dim=512, llm_dim=1024, ffn_dim=2048, n_layer=2, attention_heads=8)
        text = QWEN3_0_6B
    return ModelArgs(FrontendConfig(), encoder, adaptor, qwen3.ModelArgs.from_dict(text))


def named_parameters(model: nn.Module) -> dict[str, Any]:
    """name -> mx.array for every parameter (tree_flatten's list form, as a dict)."""
    return dict(tree_flatten(model.parameters(), destination={}))


def fill_random(model: nn.Module, seed: int, dtype: mx.Dtype, audio_dtype: mx.Dtype | None = None) -> int:
    """Replace every parameter with seeded N(0, 0.02) (norm scales: 1 + N(0, 0.02)); returns the weight bytes.

    Each tensor's values depend only on (seed, name), and both models use the same names, so ours and mlx-audio's
    get identical weights. Largest tensors first, one at a time: the transient numpy copy then never adds more than
    the current tensor on top of what is already built, so peak RSS stays close to the weights themselves.
    """
    params = sorted(named_parameters(model).items(), key=lambda kv: -kv[1].size)
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
