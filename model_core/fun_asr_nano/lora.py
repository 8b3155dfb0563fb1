"""LoRA adapters on the Fun-ASR-Nano LLM, in mlx-lm's file format (adapters.safetensors + adapter_config.json).

Built on mlx-lm's tuner (`linear_to_lora_layers`, `LoRALinear`): y = x·Wᵀ + scale·(x·A)·B with A (in, r), B (r, out)
and mlx-lm's `scale` a plain multiplier, so it is alpha / rank (the official recipe's `scaling`, funasr
models/lora/layers.py). Adapters stay unfused at run time: each LoRA layer asks `adapter_rows()` whether the
adapter is on for the current call (all rows, none, or a per-row mask of a batch), so one loaded model transcribes
with the adapter off and translates with it on, request by request and row by row. `fuse_adapter()` folds it for good
(W' = W + scale·Bᵀ·Aᵀ in mlx-lm's orientation, W + (alpha/r)·B·A in the official one).

A `"task": "translate"` entry in adapter_config.json marks a translation adapter (the unified model, prompt
转写语音并翻译为英文：); without it the adapter is taken as a transcription fine-tune.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.tuner.lora import LoRALinear
from mlx_lm.tuner.utils import linear_to_lora_layers

from ..common.errors import ModelNotLoaded

ADAPTER_TASKS = ("transcribe", "translate")
ADAPTER_FILE, CONFIG_FILE = "adapters.safetensors", "adapter_config.json"
ALL_LAYERS = -1  # mlx-lm's num_layers for "every transformer block"
ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
BLOCK_LINEARS = (*ATTENTION, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # mlx-lm's keys when none are given


@dataclass(frozen=True)
class TrainingPreset:
    """A preset's training hyper-parameters (read by the trainer, not by the model)."""

    learning_rate: float = 5e-5
    epochs: int = 2
    batch_size: int = 4
    grad_accumulation: int = 4
    warmup_steps: int = 100


@dataclass(frozen=True)
class LoraConfig:
    """Which projections get an adapter and how big it is. `keys`: module names inside a transformer block
    (mlx-lm's `keys`, e.g. "self_attn.q_proj"); `num_layers`: the last N blocks (mlx-lm's convention), -1 = all."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    keys: tuple[str, ...] = ATTENTION
    num_layers: int = ALL_LAYERS
    training: TrainingPreset = field(default_factory=TrainingPreset)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def lora_parameters(self) -> dict[str, Any]:
        """mlx-lm's `lora_parameters` (rank, scale, dropout, keys) plus alpha, which mlx-lm ignores."""
        return {"rank": self.rank, "scale": self.scale, "dropout": self.dropout, "keys": list(self.keys),
                "alpha": self.alpha}  # fmt: skip

    @classmethod
    def from_adapter_config(cls, config: dict[str, Any]) -> LoraConfig:
        """From an adapter_config.json (ours or `mlx_lm.lora`'s: alpha = scale x rank when absent)."""
        params = config.get("lora_parameters") or {}
        rank = int(params.get("rank", 8))
        alpha = float(params.get("alpha", float(params.get("scale", 20.0)) * rank))
        keys = params.get("keys")
        training = (
            TrainingPreset(**config["training"]) if isinstance(config.get("training"), dict) else TrainingPreset()
        )
        return cls(rank, alpha, float(params.get("dropout", 0.0)), tuple(keys) if keys else (),
                   int(config.get("num_layers", ALL_LAYERS)), training)  # fmt: skip

    @classmethod
    def from_official(cls, lora_conf: dict[str, Any], llm: nn.Module) -> LoraConfig:
        """From funasr's `llm_conf.lora_conf` (r, lora_alpha, lora_dropout, target_modules). Upstream wraps every
        nn.Linear of the LLM with a target among the parts of its dotted name (`target in name.split(".")`)."""
        targets = lora_conf.get("target_modules") or ["q_proj", "v_proj"]
        block = llm.layers[0]
        keys = tuple(
            name
            for name, m in block.named_modules()
            if isinstance(m, nn.Linear) and any(t in name.split(".") for t in targets)
        )
        return cls(int(lora_conf.get("r", 16)), float(lora_conf.get("lora_alpha", 32)),
                   float(lora_conf.get("lora_dropout", 0.05)), tuple(sorted(keys)))  # fmt: skip


PRESETS: dict[str, LoraConfig] = {
    # the project's recipe: every attention projection
    "seed": LoraConfig(16, 32.0, 0.05, ATTENTION, training=TrainingPreset(5e-5, 2, 4, 4, 100)),
    # funasr 1.4.16's defaults (fun_asr_nano/model.py _apply_lora_to_llm); lr 1e-4 in its example script
    "funasr": LoraConfig(
        16, 32.0, 0.05, ("self_attn.q_proj", "self_attn.v_proj"), training=TrainingPreset(learning_rate=1e-4)
    ),  # fmt: skip
}


# -- run-time switching -------------------------------------------------------------------------------------

# None: the adapter is on for every row (training, and mlx-lm's meaning of a LoRA model); False: off; a tuple of
# bools: per batch row. A context variable: each thread / request sees its own setting.
_ROWS: ContextVar[bool | tuple[bool, ...] | None] = ContextVar("dfn_lora_rows", default=None)


@contextmanager
def adapter_rows(rows: bool | Sequence[bool] | None) -> Iterator[None]:
    """Within the block, LoRA layers add their update for the rows that are on: True / None = all, False = none,
    a sequence = one flag per batch row (the batch dimension of every LLM call made inside)."""
    state = None if rows is True else rows if rows is None or rows is False else tuple(bool(r) for r in rows)
    if isinstance(state, tuple) and all(state):
        state = None
    elif isinstance(state, tuple) and not any(state):
        state = False
    token = _ROWS.set(state)
    try:
        yield
    finally:
        _ROWS.reset(token)


def current_rows() -> bool | tuple[bool, ...] | None:
    return _ROWS.get()


class SwitchableLoRALinear(LoRALinear):
    """mlx-lm's LoRALinear (same parameters, names and fuse()) whose update follows `adapter_rows()`. Off rows
    return the base product itself, so adapter-off output is the base model's exactly."""

    def __init__(self, lora: LoRALinear) -> None:
        nn.Module.__init__(self)
        self.linear, self.dropout, self.scale = lora.linear, lora.dropout, lora.scale
        self.lora_a, self.lora_b = lora.lora_a, lora.lora_b

    def __call__(self, x: mx.array) -> mx.array:
        rows = _ROWS.get()
        if rows is False:
            return self.linear(x)
        y = self.linear(x)
        z = self.scale * ((self.dropout(x) @ self.lora_a) @ self.lora_b)
        if rows is not None:  # per row: x is (B, L, in)
            z = z * mx.array(rows, dtype=z.dtype).reshape((-1,) + (1,) * (z.ndim - 1))
        return y + z.astype(x.dtype)


def lora_layers(llm: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in llm.named_modules() if isinstance(m, LoRALinear)]


def has_adapter(llm: nn.Module) -> bool:
    return bool(lora_layers(llm))


def adapter_active(llm: nn.Module) -> bool:
    """Whether a one-row call now goes through an adapter (the prompt cache keys its rows by this)."""
    rows = _ROWS.get()
    on = rows is None or (isinstance(rows, tuple) and rows[0])
    return on and has_adapter(llm)


def add_lora(llm: nn.Module, config: LoraConfig) -> None:
    """Wrap the configured projections in LoRA layers (A random, B zero: the output starts as the base model's);
    the base weights are frozen, only lora_a / lora_b are trainable. The model's train/eval mode is kept."""
    if not config.keys:
        raise ValueError("LoraConfig.keys is empty: name the projections to adapt (e.g. self_attn.q_proj)")
    linear_to_lora_layers(llm, config.num_layers, config.lora_parameters())
    upgraded = [
        (name, SwitchableLoRALinear(m)) for name, m in lora_layers(llm) if not isinstance(m, SwitchableLoRALinear)
    ]
    if not upgraded:
        raise ValueError(f"no module of the LLM matches the LoRA keys {list(config.keys)}")
    llm.update_modules(tree_unflatten(upgraded))
    llm.freeze()
    llm.unfreeze(keys=["lora_a", "lora_b"], strict=False)
    llm.train(llm.training)  # the new layers (and their dropout) follow the model's mode


def adapter_weights(llm: nn.Module) -> dict[str, mx.array]:
    flat = cast(list[tuple[str, mx.array]], tree_flatten(llm.parameters()))
    return {k: v for k, v in flat if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b")}


@dataclass(frozen=True)
class Adapter:
    """What a loaded adapter is: its LoRA shape and its task (transcribe or translate)."""

    config: LoraConfig
    task: str = "translate"
    path: str = ""


def save_adapter(llm: nn.Module, folder: str | os.PathLike, config: LoraConfig, task: str = "translate") -> Path:
    """adapters.safetensors (lora_a / lora_b under the LLM's module names) + adapter_config.json, as `mlx_lm.lora`
    writes them, plus our `task` and the preset's training parameters."""
    if task not in ADAPTER_TASKS:
        raise ValueError(f"task must be one of {ADAPTER_TASKS}, got {task!r}")
    weights = adapter_weights(llm)
    if not weights:
        raise ValueError("the model has no LoRA layers to save (add_lora or load_adapter first)")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / ADAPTER_FILE), weights)
    meta = {"fine_tune_type": "lora", "num_layers": config.num_layers, "lora_parameters": config.lora_parameters(),
            "task": task, "training": asdict(config.training)}  # fmt: skip
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def read_adapter_config(folder: str | os.PathLike) -> tuple[LoraConfig, str]:
    path = Path(folder)
    config_path = path / CONFIG_FILE
    if not config_path.is_file() or not (path / ADAPTER_FILE).is_file():
        raise ModelNotLoaded(f"{folder} is not an adapter folder ({CONFIG_FILE} + {ADAPTER_FILE})")
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    if meta.get("fine_tune_type", "lora") != "lora":
        raise ModelNotLoaded(f"{config_path}: only LoRA adapters are supported, got {meta['fine_tune_type']!r}")
    task = meta.get("task", "transcribe")
    if task not in ADAPTER_TASKS:
        raise ModelNotLoaded(f"{config_path}: task must be one of {ADAPTER_TASKS}, got {task!r}")
    config = LoraConfig.from_adapter_config(meta)
    if not config.keys:  # mlx-lm without keys: every linear of a block
        config = replace(config, keys=BLOCK_LINEARS)
    return config, task


def load_weights_into(llm: nn.Module, weights: dict[str, mx.array], where: str) -> None:
    """Adapter tensors into the LLM's LoRA layers, every name and shape checked (a ModelNotLoaded otherwise)."""
    params = adapter_weights(llm)
    errors = [f"{k}: not an adapter parameter of the model" for k in weights if k not in params]
    errors += [f"{k}: shape {tuple(w.shape)} != {tuple(params[k].shape)}" for k, w in weights.items()
               if k in params and w.shape != params[k].shape]  # fmt: skip
    errors += [f"{k}: missing" for k in params if k not in weights]
    if errors:
        raise ModelNotLoaded(f"adapter {where} does not fit this model: " + "; ".join(errors[:4]))
    dtype = llm.model.norm.weight.dtype  # the run dtype (the base weights may be quantized)
    llm.load_weights([(k, v.astype(dtype)) for k, v in weights.items()], strict=False)
    mx.eval(llm.parameters())


def load_adapter(llm: nn.Module, folder: str | os.PathLike) -> Adapter:
    """An adapter folder into `llm`, unfused (switch it with `adapter_rows`); returns what it is."""
    config, task = read_adapter_config(folder)
    try:
        add_lora(llm, config)
    except ValueError as exc:
        raise ModelNotLoaded(f"adapter {folder} does not fit this model: {exc}") from exc
    loaded = mx.load(str(Path(folder) / ADAPTER_FILE))
    assert isinstance(loaded, dict)
    load_weights_into(llm, loaded, str(folder))
    return Adapter(config, task, str(folder))


def fuse_adapter(llm: nn.Module) -> None:
    """Fold every LoRA layer into its base weight for good (mlx-lm's LoRALinear.fuse)."""
    fused = [(name, m.fuse()) for name, m in lora_layers(llm)]
    if fused:
        llm.update_modules(tree_unflatten(fused))
    mx.eval(llm.parameters())


fuse = fuse_adapter  # the name of the first API


# -- the official recipe's layout (funasr models/lora/layers.py Linear: lora_A (r, in), lora_B (out, r)) -----------

OFFICIAL_LEAVES = {"lora_A": "lora_a", "lora_B": "lora_b"}


def pop_official_lora(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """Take the official checkpoint's `llm.….lora_A` / `.lora_B` tensors out of `weights` (model names); return
    them under the LLM's mlx-lm names, transposed to mlx-lm's orientation (A (in, r), B (r, out))."""
    out = {}
    for key in [k for k in weights if k.startswith("llm.") and k.rsplit(".", 1)[-1] in OFFICIAL_LEAVES]:
        name, leaf = key.removeprefix("llm.").rsplit(".", 1)
        out[f"{name}.{OFFICIAL_LEAVES[leaf]}"] = weights.pop(key).T
    return out


def attach_official_adapter(
    llm: nn.Module, llm_conf: dict[str, Any], weights: dict[str, mx.array], where: str
) -> Adapter:
    """The adapter of a checkpoint trained with the official recipe (config.yaml `llm_conf.use_lora` +
    `lora_conf`; its tensors from pop_official_lora), unfused. Its task: `lora_conf.task` where we exported it,
    else transcribe (the recipe fine-tunes transcription)."""
    lora_conf = llm_conf.get("lora_conf") or {}
    config = LoraConfig.from_official(lora_conf, llm)
    if not weights:
        raise ModelNotLoaded(f"{where}: config.yaml sets llm_conf.use_lora but the checkpoint has no lora_A/lora_B")
    try:
        add_lora(llm, config)
    except ValueError as exc:
        raise ModelNotLoaded(f"{where}: {exc}") from exc
    load_weights_into(llm, weights, where)
    task = str(lora_conf.get("task", "transcribe"))
    if task not in ADAPTER_TASKS:
        raise ModelNotLoaded(f"{where}: lora_conf.task must be one of {ADAPTER_TASKS}, got {task!r}")
    return Adapter(config, task, where)


def official_lora_conf(config: LoraConfig, task: str) -> dict[str, Any]:
    """`llm_conf.lora_conf` for funasr (its targets match any part of a module's dotted name)."""
    if config.num_layers != ALL_LAYERS:
        raise ValueError("the official recipe adapts every layer; this adapter covers only the last few")
    targets = sorted({key.rsplit(".", 1)[-1] for key in config.keys})
    return {"r": config.rank, "lora_alpha": config.alpha, "lora_dropout": config.dropout, "target_modules": targets,
            "task": task}  # fmt: skip


def official_lora_weights(llm: nn.Module) -> dict[str, mx.array]:
    """The LLM's adapter under the official model names and orientation (the inverse of pop_official_lora)."""
    back = {v: k for k, v in OFFICIAL_LEAVES.items()}
    out = {}
    for key, value in adapter_weights(llm).items():
        name, leaf = key.rsplit(".", 1)
        out[f"llm.{name}.{back[leaf]}"] = value.T
    return out


def adapter_task(adapter_dir: str | os.PathLike) -> str:
    return read_adapter_config(adapter_dir)[1]


def apply_adapter(llm: nn.Module, adapter_dir: str | os.PathLike) -> str:
    """Load the adapter into `llm` and fuse it; returns its task."""
    adapter = load_adapter(llm, adapter_dir)
    fuse_adapter(llm)
    return adapter.task
