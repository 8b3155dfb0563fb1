"""Tiny random Fun-ASR-Nano checkpoints written by the tests in the published formats, built with the official
PyTorch code (funasr's FunASRNano) so the reference and the files come from the same weights.

- official layout: model.pt ({"state_dict": ...}), config.yaml, Qwen3-0.6B/{config.json, tokenizer files}
- mlx-community layout: model.safetensors (written by mlx-audio's converter), config.json, Qwen3-0.6B/
The vocabulary keeps Qwen3's 151,936 ids because the prompt uses <|im_start|> = 151644.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from parity import import_funasr, require_qwen3_tokenizer

ENCODER_CONF = dict(
    output_size=16, attention_heads=4, linear_units=32, num_blocks=3, tp_blocks=2, kernel_size=11,
    sanm_shfit=0, normalize_before=True, dropout_rate=0.0, positional_dropout_rate=0.0, attention_dropout_rate=0.0,
)  # fmt: skip
ADAPTOR_CONF = dict(
    downsample_rate=1, use_low_frame_rate=True, ffn_dim=24, llm_dim=32, encoder_dim=16, n_layer=2, attention_heads=4
)
FRONTEND_CONF = dict(fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10, lfr_m=7, lfr_n=6)
QWEN_CONF = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 32, "num_hidden_layers": 2,
    "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "rms_norm_eps": 1e-6, "vocab_size": 151936, "max_position_embeddings": 4096, "rope_theta": 1000000.0,
    "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
    "attention_bias": False, "torch_dtype": "float32",
}  # fmt: skip


@dataclass
class TinyCheckpoint:
    torch_model: Any  # funasr FunASRNano, eval mode, fp32
    official_dir: Path
    mlx_community_dir: Path
    tokenizer: Any  # transformers tokenizer of the checkpoint
    frontend: Any  # funasr WavFrontend with dither 0


def _write_qwen_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(QWEN_CONF, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(require_qwen3_tokenizer() / name, path / name)


def build(root: Path, seed: int = 0) -> TinyCheckpoint:
    import_funasr()
    import torch
    from funasr.frontends.wav_frontend import WavFrontend
    from funasr.models.fun_asr_nano.model import FunASRNano
    from transformers import AutoTokenizer

    official = root / "official"
    _write_qwen_dir(official / "Qwen3-0.6B")
    torch.manual_seed(seed)
    model = FunASRNano(
        audio_encoder="SenseVoiceEncoderSmall", audio_encoder_conf=dict(ENCODER_CONF),
        audio_adaptor="Transformer", audio_adaptor_conf=dict(ADAPTOR_CONF),
        llm="Qwen3-0.6b", llm_conf=dict(init_param_path=str(official / "Qwen3-0.6B"), freeze=True, llm_dtype="fp32"),
        input_size=560,
    )  # fmt: skip
    model.eval()
    with torch.no_grad():  # every weight random, norms around 1, so eps or placement mistakes show
        for name, p in model.named_parameters():
            is_norm_scale = name.endswith("weight") and ("norm" in name) and p.ndim == 1
            p.copy_(torch.randn_like(p) * (0.2 if is_norm_scale else 0.5) + (1.0 if is_norm_scale else 0.0))
    torch.save({"state_dict": model.state_dict()}, official / "model.pt")
    config = {
        "model": "FunASRNano", "model_conf": {"lsm_weight": 0.1, "length_normalized_loss": True},
        "audio_encoder": "SenseVoiceEncoderSmall", "audio_encoder_conf": ENCODER_CONF,
        "audio_adaptor": "Transformer", "audio_adaptor_conf": ADAPTOR_CONF,
        "llm": "Qwen3-0.6b", "llm_conf": {"init_param_path": "Qwen3-0.6B", "freeze": True, "llm_dtype": "bf16"},
        "input_size": 560, "frontend": "WavFrontend", "frontend_conf": {**FRONTEND_CONF, "cmvn_file": None},
    }  # fmt: skip
    (official / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))

    # the mlx-community layout, converted by mlx-audio's own converter
    import mlx.core as mx
    from mlx_audio.stt.models.fun_asr_nano.convert import _convert_weights

    community = root / "mlx-community"
    _write_qwen_dir(community / "Qwen3-0.6B")
    weights = _convert_weights(model.state_dict(), dtype="float32")
    mx.save_safetensors(str(community / "model.safetensors"), weights, metadata={"format": "mlx"})
    community_config = {
        "model_type": "fun_asr_nano", "input_size": 560, "qwen_tokenizer_path": "Qwen3-0.6B",
        "frontend_conf": {**FRONTEND_CONF, "cmvn_file": None},
        "audio_encoder_conf": {**ENCODER_CONF, "sanm_shift": 0}, "audio_adaptor_conf": ADAPTOR_CONF,
        "text_config": QWEN_CONF, "default_max_tokens": 512,
    }  # fmt: skip
    community_config["audio_encoder_conf"].pop("sanm_shfit")
    (community / "config.json").write_text(json.dumps(community_config, indent=2))

    frontend = WavFrontend(
        cmvn_file=None, fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10, lfr_m=7, lfr_n=6,
        dither=0.0,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(str(official / "Qwen3-0.6B"))
    return TinyCheckpoint(model, official, community, tokenizer, frontend)


def reference_transcribe(ckpt: TinyCheckpoint, audio, max_new_tokens: int, **prompt_kwargs) -> dict[str, Any]:  # noqa: ANN001
    """The official inference path step by step (inference_prepare, then HF greedy generate), keeping the
    intermediate tensors and the generated token ids that FunASRNano.inference only returns as text."""
    import torch

    model = ckpt.torch_model
    prompt = model.get_prompt(
        prompt_kwargs.get("hotwords", []), prompt_kwargs.get("language"), prompt_kwargs.get("itn", True)
    )
    data_in = [model.generate_chatml(prompt, torch.from_numpy(audio))]
    with torch.no_grad():
        embeds, _, batch, _, meta = model.inference_prepare(
            data_in, None, ["k"], ckpt.tokenizer, ckpt.frontend, device="cpu"
        )
        first_logits = model.llm(inputs_embeds=embeds).logits[0, -1]
        generated = model.llm.generate(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], max_new_tokens=max_new_tokens,
            do_sample=False, pad_token_id=QWEN_CONF["eos_token_id"],
        )  # fmt: skip
    return {
        "prompt": prompt,
        "embeds": embeds[0].numpy(),
        "encoder_out": meta["encoder_out"][0].numpy(),
        "adaptor_out": meta["audio_adaptor_out"][0].numpy(),
        "fake_token_len": int(batch["fake_token_len"][0, 0]),
        "first_logits": first_logits.numpy(),
        "tokens": generated[0].tolist(),
    }
