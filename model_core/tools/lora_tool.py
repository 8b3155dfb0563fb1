"""dfn-lora: move a Fun-ASR-Nano LoRA adapter between formats.

  fuse ADAPTER OUT     a standalone MLX checkpoint with the adapter folded in (W' = W + (alpha/r)·B·A), as
                       `dfn-funasr-convert --fuse-adapter` writes it
  export ADAPTER OUT   the official recipe's layout: the base model.pt's whole state dict plus the
                       llm.….lora_A / lora_B tensors, and config.yaml with llm_conf.use_lora + lora_conf, which
                       funasr 1.4.16 (FunASRNano with use_lora) loads as it loads its own fine-tunes
  extract MODEL OUT    the adapter of an official use_lora checkpoint as an adapter folder in our (mlx-lm's) format

ADAPTER is an adapter folder (adapters.safetensors + adapter_config.json); --model the base checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

from ..common.errors import ModelNotLoaded
from ..fun_asr_nano.loading import DEFAULT_MODEL, QWEN_DIR, load_model, resolve_model_dir
from ..fun_asr_nano.lora import (
    load_adapter,
    official_lora_conf,
    official_lora_weights,
    read_adapter_config,
    save_adapter,
)
from .convert import convert


def export_official(adapter: Path, out_dir: Path, model: str = DEFAULT_MODEL) -> Path:
    """The base's model.pt + the adapter's lora_A (r, in) / lora_B (out, r) under the LLM's torch names."""
    import torch

    base_dir = resolve_model_dir(model)
    if not (base_dir / "model.pt").is_file() or not (base_dir / "config.yaml").is_file():
        raise ModelNotLoaded(f"{base_dir}: export needs the official layout as the base (model.pt + config.yaml)")
    config, task = read_adapter_config(adapter)
    lora_conf = official_lora_conf(config, task)
    mlx_model, _ = load_model(base_dir)
    if mlx_model.adapter is not None:
        raise ModelNotLoaded(f"{base_dir} already holds a LoRA adapter (use_lora)")
    load_adapter(mlx_model.llm, adapter)
    state = torch.load(base_dir / "model.pt", map_location="cpu", weights_only=True)
    inner = state.get("state_dict", state) if isinstance(state, dict) else state
    dtype = inner["llm.model.embed_tokens.weight"].dtype
    for name, value in official_lora_weights(mlx_model.llm).items():
        inner[name] = torch.from_numpy(np.array(value, dtype=np.float32)).to(dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, out_dir / "model.pt")
    model_conf = yaml.safe_load((base_dir / "config.yaml").read_text(encoding="utf-8"))
    model_conf["llm_conf"] = {**(model_conf.get("llm_conf") or {}), "use_lora": True, "lora_conf": lora_conf}
    (out_dir / "config.yaml").write_text(yaml.safe_dump(model_conf, allow_unicode=True), encoding="utf-8")
    for path in base_dir.iterdir():  # tokenizer, Qwen3 config and whatever else the base ships
        if path.name in ("model.pt", "config.yaml") or path.resolve() == out_dir.resolve():
            continue
        if path.is_dir():
            shutil.copytree(path, out_dir / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, out_dir / path.name)
    if not (out_dir / QWEN_DIR).is_dir():
        raise ModelNotLoaded(f"{base_dir} has no {QWEN_DIR}/")
    return out_dir


def extract(model: str, out_dir: Path) -> Path:
    mlx_model, model_dir = load_model(model)
    if mlx_model.adapter is None:
        raise ModelNotLoaded(f"{model_dir} holds no LoRA adapter (config.yaml llm_conf.use_lora)")
    return save_adapter(mlx_model.llm, out_dir, mlx_model.adapter.config, mlx_model.adapter.task)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="dfn-lora", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fuse", "export"):
        p = sub.add_parser(name)
        p.add_argument("adapter", type=Path, help="adapter folder")
        p.add_argument("out_dir", type=Path, help="folder to write")
        p.add_argument("--model", default=DEFAULT_MODEL, help="base checkpoint: folder or Hugging Face id")
        if name == "fuse":
            p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p = sub.add_parser("extract")
    p.add_argument("model", help="an official use_lora checkpoint folder")
    p.add_argument("out_dir", type=Path, help="adapter folder to write")
    args = parser.parse_args()
    try:
        if args.command == "fuse":
            out = convert(args.model, args.out_dir, args.dtype, adapter=args.adapter)
        elif args.command == "export":
            out = export_official(args.adapter, args.out_dir, args.model)
        else:
            out = extract(args.model, args.out_dir)
    except (ModelNotLoaded, ValueError) as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
