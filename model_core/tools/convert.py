"""dfn-funasr-convert: a Fun-ASR-Nano checkpoint (official model.pt, mlx-community, or a model id) -> an MLX
folder (model.safetensors + config.json + Qwen3-0.6B/) in fp32, bf16, or with a 4/8-bit quantized LLM. A LoRA
adapter (`--fuse-adapter`, or the one an official use_lora checkpoint holds) is folded into the LLM's weights
(W' = W + (alpha/r)·B·A), so the output is a standalone checkpoint.

Conversion is separate from the runtime (mlx-examples whisper's convert.py): the runtime never needs torch once a
checkpoint is converted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..common.blas import ensure_fast_blas
from ..common.errors import ModelNotLoaded
from ..fun_asr_nano.loading import DEFAULT_MODEL, QWEN_DIR, load_model, read_configs
from ..fun_asr_nano.lora import fuse_adapter, load_adapter
from ..fun_asr_nano.model import Model

DTYPES = {"fp32": mx.float32, "bf16": mx.bfloat16, "fp16": mx.float16}


def quantize_llm(model: Model, bits: int, group_size: int = 64) -> None:
    """Quantize the LLM's linear and embedding layers only: the audio path stays in float (the adaptor's output
    reaches ~1e3 and overflows fp16; quantized matmuls are also slower than fp32 on Linux CPU: 403-487 vs 239 ms
    per decoded token, measured)."""
    nn.quantize(model.llm, group_size=group_size, bits=bits)


def convert(
    source: str, out_dir: Path, dtype: str = "fp32", quantize_bits: int | None = None, adapter: Path | None = None
) -> Path:
    if dtype == "fp16":
        print("warning: the adaptor output reaches ~1.2e3 and overflows fp16 in places; prefer fp32 or bf16")
    model, model_dir = load_model(source, DTYPES[dtype])
    if adapter is not None:
        if model.adapter is not None:
            raise ModelNotLoaded(
                f"{source} already holds a LoRA adapter (use_lora); it is fused without --fuse-adapter"
            )
        model.adapter = load_adapter(model.llm, adapter)
    fuse_adapter(model.llm)  # a standalone checkpoint: no LoRA layers left
    model_conf, qwen_conf = read_configs(model_dir)
    config = {
        "model_type": "fun_asr_nano",
        "input_size": model_conf.get("input_size", 560),
        "frontend_conf": model_conf.get("frontend_conf") or {},
        "audio_encoder_conf": model_conf.get("audio_encoder_conf") or {},
        "audio_adaptor_conf": model_conf.get("audio_adaptor_conf") or {},
        "text_config": qwen_conf,
        "converted_from": str(source),
        "dtype": dtype,
    }
    if model.adapter is not None:
        config["fused_adapter"] = {
            "task": model.adapter.task,
            "lora_parameters": model.adapter.config.lora_parameters(),
        }
    if quantize_bits:
        quantize_llm(model, quantize_bits)
        config["quantization"] = {"bits": quantize_bits, "group_size": 64, "modules": ["llm"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if (model_dir / QWEN_DIR).resolve() != (out_dir / QWEN_DIR).resolve():
        shutil.copytree(model_dir / QWEN_DIR, out_dir / QWEN_DIR, dirs_exist_ok=True)
    return out_dir


def main() -> None:
    ensure_fast_blas()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default=DEFAULT_MODEL, help="model folder or Hugging Face id")
    parser.add_argument("out_dir", type=Path, help="folder to write")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--quantize", type=int, choices=[4, 8], default=None, help="quantize the LLM to 4 or 8 bits")
    parser.add_argument("--fuse-adapter", type=Path, default=None, help="an adapter folder to fold into the LLM")
    args = parser.parse_args()
    try:
        out = convert(args.source, args.out_dir, args.dtype, args.quantize, args.fuse_adapter)
    except ModelNotLoaded as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
