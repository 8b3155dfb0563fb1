"""Loading Fun-ASR-Nano checkpoints: one loader for every published layout (mlx-lm's load pattern).

- official (FunAudioLLM/Fun-ASR-Nano-2512): model.pt (torch `state_dict`), config.yaml, Qwen3-0.6B/
- mlx-community/Fun-ASR-Nano-2512 and our `dfn-funasr-convert` output: model.safetensors, config.json, Qwen3-0.6B/
- a Hugging Face model id: downloaded once with huggingface_hub (progress bars), then as above.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import mlx.core as mx
import yaml

from ..common.errors import ModelNotLoaded
from ..common.settings import default_dtype
from .lora import Adapter, LoraConfig, attach_official_adapter, pop_official_lora
from .model import Model, ModelArgs

DEFAULT_MODEL = "FunAudioLLM/Fun-ASR-Nano-2512"
QWEN_DIR = "Qwen3-0.6B"
DOWNLOAD_PATTERNS = ["model.pt", "model.safetensors", "config.yaml", "config.json", f"{QWEN_DIR}/*"]
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")  # owner/name, as the hub allows


def resolve_model_dir(path_or_id: str | os.PathLike, allow_download: bool = True) -> Path:
    local = Path(path_or_id).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotLoaded(f"{local} is not a model directory")
        return local
    repo_id = str(path_or_id)
    if not HUB_ID.fullmatch(repo_id) or ".." in repo_id:  # nothing else reaches the hub's cache paths
        raise ModelNotLoaded(f"no model directory at {local} (and {repo_id!r} is not a Hugging Face model id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # the cache first, so an offline machine with the model works
        return Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS, local_files_only=True))
    except LocalEntryNotFoundError:
        if not allow_download:
            raise ModelNotLoaded(f"{repo_id} is not in the Hugging Face cache and downloads are off") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception as exc:  # network errors come in many types
        raise ModelNotLoaded(
            f"cannot download {repo_id} ({type(exc).__name__}: {exc}). On a machine with network access run "
            f"`huggingface-cli download {repo_id}`, copy the folder here and pass its path, or set HF_HOME to a "
            "cache that holds it."
        ) from exc


def read_configs(model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, Qwen3 config) from either layout."""
    if (model_dir / "config.yaml").is_file():
        model_conf = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    elif (model_dir / "config.json").is_file():
        model_conf = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    else:
        raise ModelNotLoaded(f"{model_dir} has neither config.yaml nor config.json")
    qwen_path = model_dir / QWEN_DIR / "config.json"
    if qwen_path.is_file():
        qwen_conf = json.loads(qwen_path.read_text(encoding="utf-8"))
    elif isinstance(model_conf.get("text_config"), dict):
        qwen_conf = model_conf["text_config"]
    else:
        raise ModelNotLoaded(f"{model_dir} has no {QWEN_DIR}/config.json")
    return model_conf, qwen_conf


def read_weights(model_dir: Path) -> dict[str, mx.array]:
    safetensors = sorted(model_dir.glob("model*.safetensors"))
    if safetensors:
        weights: dict[str, mx.array] = {}
        for path in safetensors:
            try:
                loaded = mx.load(str(path))
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelNotLoaded(f"{path} is not a readable safetensors file: {exc}") from exc
            assert isinstance(loaded, dict), path  # .safetensors files load as a name -> array dict
            weights.update(loaded)
        return weights
    pt = model_dir / "model.pt"
    if not pt.is_file():
        raise ModelNotLoaded(f"{model_dir} has neither model.safetensors nor model.pt")
    return read_torch_checkpoint(pt)


def read_torch_checkpoint(path: Path) -> dict[str, mx.array]:
    """The official model.pt, loaded with weights_only=True: tensors only, no pickled code runs."""
    try:
        import torch
    except ImportError as exc:
        raise ModelNotLoaded(
            f"{path.name} is a PyTorch file: install torch, or convert it once with `dfn-funasr-convert`"
        ) from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:  # e.g. pickled code
        raise ModelNotLoaded(
            f"{path.name} is not a plain tensor checkpoint (only weights are loaded, never pickled objects): "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not isinstance(obj, dict):
        raise ModelNotLoaded(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    weights = {}
    for key, tensor in obj.items():
        if hasattr(tensor, "dtype"):
            # numpy has no bf16: go through fp32 (exact), cast to the run dtype later
            weights[key] = mx.array(tensor.float().numpy()) if tensor.is_floating_point() else mx.array(tensor.numpy())
    return weights


AUDIO_PREFIXES = ("audio_encoder.", "audio_adaptor.")


def audio_weights_dtype(dtype: mx.Dtype) -> mx.Dtype:
    """The low-memory option: the audio encoder + adaptor weights (234M parameters) are stored in bf16 and
    widened to the input's dtype inside each product (MLX promotes bf16 x fp32 to fp32), so fp32 runs keep fp32
    arithmetic (BLAS) and hold ~0.45 GB less. bf16 rather than fp16: widening bf16 is a shift, 5.5x cheaper than
    fp16's conversion on our CPUs (measured: a whole encoder pass +81 % with fp16 weights)."""
    return mx.bfloat16 if dtype == mx.float32 else dtype


def load_model(
    path_or_id: str | os.PathLike = DEFAULT_MODEL, dtype: mx.Dtype | None = None, low_memory: bool = False
) -> tuple[Model, Path]:
    model_dir = resolve_model_dir(path_or_id)
    model_conf, qwen_conf = read_configs(model_dir)
    model = Model(ModelArgs.from_configs(model_conf, qwen_conf))
    if quant := model_conf.get("quantization"):
        import mlx.nn as nn

        nn.quantize(model.llm, group_size=quant["group_size"], bits=quant["bits"])
    weights = model.sanitize(read_weights(model_dir))
    lora_weights = pop_official_lora(weights)  # the official recipe's adapter (use_lora): added after the base
    dtype = dtype or default_dtype()
    audio_dtype = audio_weights_dtype(dtype) if low_memory else dtype

    # quantization scales keep their saved dtype; every other float weight runs in `dtype` (audio: `audio_dtype`)
    def cast(name: str, value: mx.array) -> mx.array:
        if not mx.issubdtype(value.dtype, mx.floating) or name.endswith((".scales", ".biases")):
            return value
        return value.astype(audio_dtype if name.startswith(AUDIO_PREFIXES) else dtype)

    weights = {k: cast(k, v) for k, v in weights.items()}
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:
        raise ModelNotLoaded(f"{model_dir}: weights do not match the config: {exc}") from exc
    llm_conf = model_conf.get("llm_conf") or {}
    if llm_conf.get("use_lora") or lora_weights:
        model.adapter = attach_official_adapter(model.llm, llm_conf, lora_weights, str(model_dir))
    elif isinstance(fused := model_conf.get("fused_adapter"), dict):  # dfn-lora fuse output: already in the weights
        model.adapter = Adapter(LoraConfig.from_adapter_config(fused), str(fused.get("task", "transcribe")))
    mx.eval(model.parameters())
    model.eval()
    return model, model_dir


def load_tokenizer(model_dir: Path) -> Any:  # a transformers tokenizer
    from transformers import AutoTokenizer

    qwen_dir = model_dir / QWEN_DIR
    if not (qwen_dir / "tokenizer.json").is_file() and not (qwen_dir / "vocab.json").is_file():
        raise ModelNotLoaded(f"{qwen_dir} has no tokenizer files")
    return AutoTokenizer.from_pretrained(str(qwen_dir))
