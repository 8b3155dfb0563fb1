"""dfn-lora: move a Fun-ASR-Nano LoRA adapter between formats.

  fuse ADAPTER OUT     a standalone MLX checkpoint with the adapter folded in (W' = W + (alpha/r)·B·A), as
                       `dfn-funasr-convert --fuse-adapter` writes it
  export ADAPTER OUT   the official recipe's layout: the base model.pt's whole state dict plus the
                       llm.….lora_A / lora_B tensors, and config.yaml with llm_conf.use_lora + lora_conf, which
                       funasr 1.4.16 (FunASRNano with use_lora) loads as it loads its own fine-tunes
  extract MODEL OUT    the adapter of an official use_lora checkpoint as an adapter folder in our (mlx-lm's) format
  bench [--json F]     decode cost of an unfused adapter (off / on) vs fused, ms per token, at Qwen3-0.6B's real
                       shapes with random weights, on both decode backends

ADAPTER is an adapter folder (adapters.safetensors + adapter_config.json); --model the base checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlx.utils import tree_map

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


def bench(tokens: int = 24, rounds: int = 3, preset: str = "seed", backends: tuple[str, ...] = ("numpy", "mlx"),
          seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """ms per decoded token (median over rounds). Adapter off and on are interleaved, round by round; fused is
    measured after them (fusing rewrites the weights), so a change of machine load between the two phases biases
    the unfused/fused ratio: compare the load averages it reports."""
    import time

    import mlx.core as mx
    from mlx_lm.models import qwen3

    from ..fun_asr_nano.backends.numpy_decoder import NumpyQwen3
    from ..fun_asr_nano.cache import make_cache, prefill
    from ..fun_asr_nano.lora import PRESETS, adapter_rows, adapter_weights, add_lora, fuse_adapter
    from .bench.workload import QWEN3_0_6B

    mx.random.seed(seed)
    llm = qwen3.Model(qwen3.ModelArgs.from_dict(QWEN3_0_6B))
    llm.update(tree_map(lambda p: mx.random.normal(p.shape) * 0.02, llm.parameters()))
    config = PRESETS[preset]
    add_lora(llm, config)
    llm.eval()
    llm.load_weights([(k, mx.random.normal(v.shape) * 0.02) for k, v in adapter_weights(llm).items()], strict=False)
    mx.eval(llm.parameters())
    prompt = mx.random.normal((36, llm.args.hidden_size)) * 0.05  # a 5 s prompt
    mx.eval(prompt)

    def per_token(backend: str, adapter: bool) -> float:
        with adapter_rows(adapter):
            if backend == "numpy":
                decoder = NumpyQwen3(llm, 36 + tokens + 1)
                decoder.forward(np.array(prompt))
                t0 = time.perf_counter()
                for _ in range(tokens):
                    decoder.step(1000)
            else:
                cache = make_cache(llm, 36 + tokens + 1)
                mx.eval(prefill(llm, prompt[None], cache))
                token = mx.array([[1000]])
                t0 = time.perf_counter()
                for _ in range(tokens):
                    mx.eval(llm(token, cache=cache))
            return (time.perf_counter() - t0) / tokens * 1000

    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for backend in backends:
            for name, on in (("unfused_off", False), ("unfused_on", True)):
                samples.setdefault(f"{backend}/{name}", []).append(per_token(backend, on))
    fuse_adapter(llm)
    for _ in range(rounds):
        for backend in backends:
            samples.setdefault(f"{backend}/fused", []).append(per_token(backend, True))
    ms = {k: float(np.median(v)) for k, v in samples.items()}
    ratios = {
        b: {"unfused_on/fused": ms[f"{b}/unfused_on"] / ms[f"{b}/fused"],
            "unfused_on/unfused_off": ms[f"{b}/unfused_on"] / ms[f"{b}/unfused_off"]}
        for b in backends
    }  # fmt: skip
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"ms_per_token": ms, "samples": samples, "ratios": ratios, "tokens": tokens, "rounds": rounds,
            "preset": preset, "lora_parameters": config.lora_parameters(), "load_average": load,
            "cpu_count": os.cpu_count()}  # fmt: skip


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
    p = sub.add_parser("bench")
    p.add_argument("--tokens", type=int, default=24, help="decode steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--preset", choices=["seed", "funasr"], default="seed")
    p.add_argument("--backend", choices=["numpy", "mlx", "both"], default="both")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here too")
    args = parser.parse_args()
    if args.command == "bench":
        chosen = ("numpy", "mlx") if args.backend == "both" else (args.backend,)
        report = bench(args.tokens, args.rounds, args.preset, chosen)
        for name, value in report["ms_per_token"].items():
            print(f"{name:22s} {value:8.1f} ms/token")
        for backend, r in report["ratios"].items():
            print(f"{backend}: unfused(on)/fused {r['unfused_on/fused']:.3f}, on/off {r['unfused_on/unfused_off']:.3f}")
        print(f"load average {report['load_average']}, {report['cpu_count']} CPUs")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return
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
