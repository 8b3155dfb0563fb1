"""Adapters: an mlx-lm LoRA adapter (adapters.safetensors + adapter_config.json, as `mlx_lm.lora` writes them)
on the LLM, fused into its weights at load time, so decoding costs nothing extra and the numpy path sees plain
weights. A `"task": "translate"` entry in adapter_config.json marks a translation adapter (the unified model,
prompt 转写语音并翻译为英文：); without it the adapter is taken as a transcription fine-tune.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten
from mlx_lm.tuner.utils import load_adapters

from ..common.errors import ModelNotLoaded

ADAPTER_TASKS = ("transcribe", "translate")


def adapter_task(adapter_dir: str | os.PathLike) -> str:
    config_path = Path(adapter_dir) / "adapter_config.json"
    if not config_path.is_file() or not (Path(adapter_dir) / "adapters.safetensors").is_file():
        raise ModelNotLoaded(f"{adapter_dir} is not an adapter folder (adapter_config.json + adapters.safetensors)")
    task = json.loads(config_path.read_text(encoding="utf-8")).get("task", "transcribe")
    if task not in ADAPTER_TASKS:
        raise ModelNotLoaded(f"{config_path}: task must be one of {ADAPTER_TASKS}, got {task!r}")
    return task


def apply_adapter(llm: nn.Module, adapter_dir: str | os.PathLike) -> str:
    """Load the adapter into `llm` and fuse it; returns its task."""
    task = adapter_task(adapter_dir)
    try:
        load_adapters(llm, str(adapter_dir))
    except (ValueError, KeyError) as exc:
        raise ModelNotLoaded(f"adapter {adapter_dir} does not fit this model: {exc}") from exc
    fused = [(name, module.fuse()) for name, module in llm.named_modules() if hasattr(module, "fuse")]
    if fused:
        llm.update_modules(tree_unflatten(fused))
    mx.eval(llm.parameters())
    return task
