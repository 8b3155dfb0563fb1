"""Fun-ASR-Nano in MLX: SenseVoice encoder + adaptor + Qwen3 (mlx-lm) with audio rows spliced into the prompt.

Checkpoint key names are upstream's, verbatim (`audio_encoder.*`, `audio_adaptor.*`, `llm.model.*`), so both the
official `model.pt` and the mlx-community safetensors load through the same `sanitize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models import qwen3

from .adaptor import AdaptorArgs, AudioAdaptor, fake_token_len
from .backends import numpy_encoder
from .encoder import EncoderArgs, SenseVoiceEncoderSmall
from .frontend import FrontendConfig
from .lora import Adapter

# Qwen3: <|endoftext|> and <|im_end|> both end a response
DEFAULT_EOS_TOKEN_IDS = (151643, 151645)


@dataclass
class ModelArgs:
    frontend: FrontendConfig
    encoder: EncoderArgs
    adaptor: AdaptorArgs
    text: qwen3.ModelArgs
    eos_token_ids: tuple[int, ...] = DEFAULT_EOS_TOKEN_IDS
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_configs(cls, model_conf: dict[str, Any], qwen_conf: dict[str, Any]) -> ModelArgs:
        """`model_conf`: the official config.yaml or the mlx-community config.json (same *_conf sections)."""
        adaptor = dict(model_conf.get("audio_adaptor_conf") or {})
        # upstream overrides these from the built modules (encoder output size, LLM hidden size)
        encoder = EncoderArgs.from_dict(
            {"input_size": model_conf.get("input_size", 560), **(model_conf.get("audio_encoder_conf") or {})}
        )
        adaptor["encoder_dim"] = encoder.output_size
        adaptor["llm_dim"] = qwen_conf["hidden_size"]
        eos = qwen_conf.get("eos_token_id")
        eos_ids = set(DEFAULT_EOS_TOKEN_IDS) | set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return cls(
            # dither is training-time noise (WavFrontend defaults to 1.0): inference is deterministic
            frontend=FrontendConfig.from_dict({**(model_conf.get("frontend_conf") or {}), "dither": 0.0}),
            encoder=encoder,
            adaptor=AdaptorArgs.from_dict(adaptor),
            text=qwen3.ModelArgs.from_dict({"model_type": "qwen3", **qwen_conf}),
            eos_token_ids=tuple(sorted(eos_ids)),
        )


class Model(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.audio_encoder = SenseVoiceEncoderSmall(args.encoder)
        self.audio_adaptor = AudioAdaptor(args.adaptor)
        self.llm = qwen3.Model(args.text)
        # a LoRA adapter the checkpoint itself holds (the official recipe's use_lora), attached by the loader
        self.adapter: Adapter | None = None

    def encode_audio(self, features: mx.array, lengths: mx.array | None = None, backend: str = "mlx") -> mx.array:
        """(B, T_lfr, 560) LFR features -> (B, T_lfr, hidden) adaptor rows; the LLM sees the first fake_token_len.
        backend "numpy" (backends.choose_backends) serves one unpadded segment; padded batches always run in MLX."""
        if backend == "numpy" and lengths is None and features.shape[0] == 1:
            rows = numpy_encoder.encode_and_adapt(self.audio_encoder, self.audio_adaptor, np.asarray(features[0]))
            return mx.array(rows)[None]
        adapted, _ = self.audio_adaptor(self.audio_encoder(features, lengths), lengths)
        return adapted

    def embed_tokens(self, ids: mx.array) -> mx.array:
        return self.llm.model.embed_tokens(ids)

    @staticmethod
    def audio_token_count(t_lfr: int) -> int:
        return fake_token_len(t_lfr)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        out: dict[str, mx.array] = {}
        for key, value in weights.items():
            key = key.removeprefix("module.")
            if not key.startswith(("audio_encoder.", "audio_adaptor.", "llm.")):
                continue  # CTC decoder / timestamp head: not part of the LLM decoding path
            if key == "llm.lm_head.weight" and self.args.text.tie_word_embeddings:
                continue
            if key.endswith("fsmn_block.weight") and value.ndim == 3 and value.shape[1] == 1:
                value = value.transpose(0, 2, 1)  # torch depthwise conv (C, 1, K) -> MLX (C, K, 1)
            out[key] = value
        return out
