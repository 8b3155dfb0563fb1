"""`dfn-train-translator`: LoRA-tune the packaged translator (Qwen2.5-Coder-0.5B-Instruct) on the HSK dev split,
and export the adapter for llama.cpp.

- data: HSK *dev* sentences only (`evaluation.data`; an eval-bucket id raises), each as the runtime's own chat
  prompt (`translation.prompt.build_messages`: system message, injection demos, the transcript block) with the
  English reference as the assistant turn; loss on the assistant tokens only. A slice of dev is held out for
  validation loss;
- training: mlx-lm's tuner (`linear_to_lora_layers`, `trainer.train`) on the packaged translator's mlx-lm folder
  (`dfn-prepare-models --mlx`) in fp32 (the only fast dtype for MLX on Linux CPU); the logits are computed only at
  the target positions (the 152k-word head over the whole ~300-token prompt would cost more than the body);
- output (the cache dir's `translator-lora/` by default): mlx-lm's `adapters.safetensors` + `adapter_config.json`
  (MLX engine: `load(..., adapter_path=)`) and `adapter.gguf`, a llama.cpp LoRA adapter (the Linux default engine
  loads it with `lora_path`; `DFN_TRANSLATE_LORA` of the translate-text node), and `fused.gguf`, the packaged
  GGUF with the adapter fused in (`DFN_TRANSLATE_MODEL=trained`: one model file, at the base's speed).

mlx-lm's LoRALinear computes y = W x + scale * (x A) B with A: [in, r], B: [r, out]; llama.cpp computes
W x + (alpha / r) * B' (A' x) with A': [r, in], B': [out, r] (GGUF dims reversed), so the export writes
A' = A^T, B' = B^T and alpha = scale * r.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..translation.local import FUSED_GGUF, LORA_GGUF, TRAINED_LORA_DIR, trained_lora_dir
from ..translation.prompt import build_messages
from .evaluation.data import build_hsk_manifest, is_eval_id, read_jsonl

# mlx-lm module names -> llama.cpp tensor names (per block), for the projections a LoRA may wrap
GGUF_BLOCK_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
DEFAULT_KEYS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")


def chat_rows(manifest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Manifest rows -> mlx-lm chat rows in the runtime prompt. Refuses any evaluation-bucket sentence."""
    rows = []
    for row in manifest:
        if is_eval_id(str(row["id"])):
            raise ValueError(f"sentence {row['id']!r} is in the evaluation bucket: never train on it")
        messages = [*build_messages(row["zh"]), {"role": "assistant", "content": row["en"]}]
        rows.append({"id": row["id"], "messages": messages})
    return rows


def split_rows(rows: list[dict[str, Any]], n_val: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded shuffle, then the first n_val rows for validation and the rest for training."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[n_val:], rows[:n_val]


# -- training ---------------------------------------------------------------------------------------------------


class _Shared:
    """A KV "cache" that holds the shared prompt prefix's keys/values (batch 1) and puts them, broadcast over the
    batch, in front of each call's own (differentiable: plain concatenation)."""

    def __init__(self, keys: Any, values: Any) -> None:
        self.keys, self.values, self.offset = keys, values, keys.shape[2]

    def update_and_fetch(self, keys: Any, values: Any) -> tuple[Any, Any]:
        import mlx.core as mx

        def join(prefix: Any, new: Any) -> Any:
            return mx.concatenate([mx.broadcast_to(prefix, (new.shape[0], *prefix.shape[1:])), new], axis=2)

        return join(self.keys, keys), join(self.values, values)


class _Capture:
    """A KV "cache" that only records the keys/values of one pass from position 0."""

    offset = 0

    def update_and_fetch(self, keys: Any, values: Any) -> tuple[Any, Any]:
        self.keys, self.values = keys, values
        return keys, values


def shared_prefix(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The tokens every training prompt starts with (system message and worked examples): the common prefix of two
    renderings that differ only in the transcript (as translation.mlx does for its prompt cache)."""
    a, b = (tokenizer.apply_chat_template([*messages[:-2], {"role": "user", "content": text}],
                                          add_generation_prompt=True) for text in ("甲", "乙"))  # fmt: skip
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return list(a[:n])


class PrefixLoss:
    """Target-token cross-entropy for rows that all start with the same prompt prefix, computed exactly as on the
    whole rows but cheaper: with LoRA on the last blocks only, the prefix's keys/values below them and its hidden
    state entering them do not depend on the adapter, so they are computed once; per step the prefix goes through
    the adapted blocks once (batch 1), and each row's own tokens (the transcript turn and the answer, ~1/6 of the
    ~300-token prompt) through all blocks. The vocabulary head runs at the target positions only.
    (tests/test_translator_lora.py checks it against mlx-lm's plain loss over the whole rows.)"""

    def __init__(self, model: Any, prefix: list[int], first_adapted: int) -> None:
        import mlx.core as mx

        self.model, self.prefix, self.first = model, list(prefix), first_adapted
        h = model.model.embed_tokens(mx.array([self.prefix]))
        self.kv = []
        for layer in model.model.layers[: self.first]:
            capture = _Capture()
            h = layer(h, "causal", capture)
            self.kv.append((capture.keys, capture.values))
        self.hidden = h
        mx.eval(self.hidden, self.kv)

    def __call__(self, model: Any, tokens: Any, pos: Any, tgt: Any, mask: Any) -> tuple[Any, Any]:
        import mlx.core as mx
        import mlx.nn as nn

        n, s = len(self.prefix), tokens.shape[1]
        attend = mx.arange(n + s)[None, :] <= (n + mx.arange(s))[:, None]  # causal, after the whole prefix
        h = model.model.embed_tokens(tokens)
        layers = model.model.layers
        for layer, (keys, values) in zip(layers[: self.first], self.kv, strict=True):
            h = layer(h, attend, _Shared(keys, values))
        shared = self.hidden
        for layer in layers[self.first :]:
            capture = _Capture()
            shared = layer(shared, "causal", capture)
            h = layer(h, attend, _Shared(capture.keys, capture.values))
        picked = mx.take_along_axis(model.model.norm(h), pos[..., None], axis=1)
        head = model.lm_head if hasattr(model, "lm_head") else model.model.embed_tokens.as_linear
        ntoks = mask.sum()
        return (nn.losses.cross_entropy(head(picked).astype(mx.float32), tgt) * mask).sum() / ntoks, ntoks

    def batches(self, dataset: Any, batch_size: int, max_seq_length: int, loop: bool = False, seed: int | None = None,
                comm_group: Any = None) -> Any:  # fmt: skip  # noqa: ARG002 - mlx-lm's iterate_batches signature
        """Rows sorted by length into batches (visited in a random order per epoch), the prefix stripped, right
        padded (never truncated: max_seq_length is ignored, the rows are one sentence each); per row the
        positions whose next token is an answer token, those tokens and their mask."""
        import mlx.core as mx

        rows = [dataset[i] for i in range(len(dataset))]
        n = len(self.prefix)
        for tokens, _ in rows:
            if list(tokens[:n]) != self.prefix:
                raise ValueError("a training row does not start with the shared prompt prefix")
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        groups = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        if not groups:
            raise ValueError(f"need at least batch_size={batch_size} rows, got {len(rows)}")
        rng = np.random.default_rng(seed)
        while True:
            for g in rng.permutation(len(groups)):
                picked = [(list(rows[i][0][n:]), rows[i][1] - n) for i in groups[g]]  # rows are never cut
                # widths rounded up to 16: fewer distinct shapes for mlx-lm's compiled step to trace
                width = -(-max(len(t) for t, _ in picked) // 16) * 16
                k = -(-max(len(t) - start for t, start in picked) // 16) * 16
                tokens = np.zeros((len(picked), width), np.int32)
                pos, tgt = np.zeros((len(picked), k), np.int32), np.zeros((len(picked), k), np.int32)
                mask = np.zeros((len(picked), k), np.float32)
                for b, (row, start) in enumerate(picked):
                    tokens[b, : len(row)] = row
                    m = len(row) - start
                    pos[b, :m], tgt[b, :m], mask[b, :m] = np.arange(start - 1, len(row) - 1), row[start:], 1.0
                yield mx.array(tokens), mx.array(pos), mx.array(tgt), mx.array(mask)
            if not loop:
                break


def load_fp32(model_dir: str | Path) -> tuple[Any, Any]:
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm import load

    model, tokenizer = load(str(model_dir))[:2]
    model.update(tree_map(lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p,
                          model.parameters()))  # fmt: skip
    mx.eval(model.parameters())
    return model, tokenizer


def lora_parameters(rank: int, alpha: float, dropout: float, keys: tuple[str, ...]) -> dict[str, Any]:
    """mlx-lm's LoRA config; its `scale` multiplies directly, so it is alpha / rank."""
    return {"rank": rank, "scale": alpha / rank, "dropout": dropout, "keys": list(keys)}


def train_adapter(
    model_dir: str | Path,
    out_dir: str | Path,
    train_rows: list[dict[str, Any]],
    val_rows: list[dict[str, Any]],
    *,
    num_layers: int = 8,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    keys: tuple[str, ...] = DEFAULT_KEYS,
    steps: int = 300,
    batch_size: int = 4,
    learning_rate: float = 2e-4,
    warmup: int = 20,
    max_seq_length: int = 512,
    steps_per_report: int = 10,
    steps_per_eval: int = 100,
    val_batches: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Train, save mlx-lm's adapter files in out_dir, and return the log (config, losses, tokens/s, peak memory)."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.datasets import CacheDataset, ChatDataset
    from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    mx.random.seed(seed)
    np.random.seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_fp32(model_dir)
    model.freeze()
    params = lora_parameters(rank, alpha, dropout, keys)
    linear_to_lora_layers(model, num_layers, params)
    config = {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params, "task": "translate",
              "base": "packaged", "data": "HSK dev split", "train_sentences": len(train_rows), "steps": steps,
              "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}  # fmt: skip
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    prefix_loss = PrefixLoss(
        model, shared_prefix(tokenizer, train_rows[0]["messages"]), len(model.model.layers) - num_layers
    )
    train_set = CacheDataset(ChatDataset(train_rows, tokenizer, mask_prompt=True))
    val_set = CacheDataset(ChatDataset(val_rows, tokenizer, mask_prompt=True)) if val_rows else None
    warmup = min(warmup, max(1, steps - 1))
    schedule = optim.join_schedules(
        [optim.linear_schedule(learning_rate / 10, learning_rate, warmup),
         optim.cosine_decay(learning_rate, max(1, steps - warmup), learning_rate / 10)], [warmup],
    )  # fmt: skip
    log: dict[str, Any] = {"config": config, "train": [], "val": []}

    class Log(TrainingCallback):
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            log["train"].append(info)
            (out / "train-log.json").write_text(json.dumps(log, indent=2) + "\n")

        def on_val_loss_report(self, info: dict[str, Any]) -> None:
            log["val"].append(info)

    args = TrainingArgs(
        batch_size=batch_size, iters=steps, val_batches=val_batches, steps_per_report=steps_per_report,
        steps_per_eval=steps_per_eval, steps_per_save=max(steps_per_eval, 50),
        adapter_file=str(out / "adapters.safetensors"), max_seq_length=max_seq_length,
    )  # fmt: skip
    t0 = time.perf_counter()
    train(model, optim.AdamW(learning_rate=schedule, weight_decay=0.0), train_set, val_set, args,
          loss=prefix_loss, iterate_batches=prefix_loss.batches, training_callback=Log())  # fmt: skip
    log["wall_s"] = time.perf_counter() - t0
    log["peak_memory_gb"] = mx.get_peak_memory() / 1e9
    (out / "train-log.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


# -- export for llama.cpp ---------------------------------------------------------------------------------------


def gguf_tensor_name(mlx_name: str) -> str:
    """`model.layers.23.self_attn.q_proj.lora_a` -> `blk.23.attn_q.weight.lora_a`."""
    parts = mlx_name.split(".")
    if len(parts) != 6 or parts[:2] != ["model", "layers"] or parts[-1] not in ("lora_a", "lora_b"):
        raise ValueError(f"not a LoRA tensor of a decoder block: {mlx_name!r}")
    module = ".".join(parts[3:5])
    if module not in GGUF_BLOCK_NAMES:
        raise ValueError(f"no llama.cpp name for {module!r}")
    return f"blk.{parts[2]}.{GGUF_BLOCK_NAMES[module]}.weight.{parts[-1]}"


def export_gguf(adapter_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """mlx-lm adapter folder -> llama.cpp LoRA adapter GGUF (general.type "adapter", adapter.type "lora")."""
    import gguf
    import mlx.core as mx

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    params = config["lora_parameters"]
    rank, scale = int(params["rank"]), float(params["scale"])
    weights: dict[str, Any] = mx.load(str(adapter_dir / "adapters.safetensors"))  # type: ignore[assignment]
    out_path = Path(out_path) if out_path else adapter_dir / LORA_GGUF
    tmp = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch="qwen2")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, scale * rank)
    for name in sorted(weights):
        value = np.array(weights[name].astype(mx.float32))
        if value.shape[-1 if name.endswith("lora_a") else 0] != rank:
            raise ValueError(f"{name} has shape {value.shape}, not rank {rank}")
        writer.add_tensor(gguf_tensor_name(name), np.ascontiguousarray(value.T))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_path)
    return out_path


FUSED_TYPES = ("q8_0", "f16")


def fused_weight(base: np.ndarray, lora_a: np.ndarray, lora_b: np.ndarray, scale: float) -> np.ndarray:
    """A GGUF weight [out, in] with mlx-lm's adapter folded in: W + scale * (A B)^T (A: [in, r], B: [r, out])."""
    return base + scale * (lora_a @ lora_b).T


def fuse_gguf(
    adapter_dir: str | Path, base_gguf: str | Path, out_path: str | Path | None = None, fused_type: str = "q8_0"
) -> Path:
    """Base GGUF + mlx-lm adapter -> one GGUF, one model file to ship (measured at the base's speed; llama.cpp's
    unfused adapter was about as fast on a quiet machine, 0.50 against 0.47 s per sentence). Each adapted weight
    is dequantized, fused and stored as
    `fused_type`; every other tensor and all metadata are copied byte for byte. Not the base's own type: the
    adapter's change is 5-9 % of a weight's norm, and re-quantizing to 5 bits would round away 30-70 % of it,
    8-bit blocks (q8_0) keep ~90 % (cosine 0.99), f16 all of it at ~3x the bytes of those tensors."""
    import gguf
    import mlx.core as mx
    from gguf.quants import dequantize, quantize

    if fused_type not in FUSED_TYPES:
        raise ValueError(f"fused_type must be one of {FUSED_TYPES}, got {fused_type!r}")
    qtype = gguf.GGMLQuantizationType[fused_type.upper()]
    adapter_dir = Path(adapter_dir)
    scale = float(json.loads((adapter_dir / "adapter_config.json").read_text())["lora_parameters"]["scale"])
    weights: dict[str, Any] = mx.load(str(adapter_dir / "adapters.safetensors"))  # type: ignore[assignment]
    pairs = {gguf_tensor_name(name).removesuffix(".lora_a"): name.removesuffix(".lora_a")
             for name in weights if name.endswith(".lora_a")}  # fmt: skip
    reader = gguf.GGUFReader(str(base_gguf))
    missing = sorted(set(pairs) - {t.name for t in reader.tensors})
    if missing:
        raise ValueError(f"the adapter wraps tensors the base GGUF does not have: {missing[:3]}")
    out_path = Path(out_path) if out_path else adapter_dir / FUSED_GGUF
    tmp = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch=str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents()))
    for field in reader.fields.values():  # as gguf's own gguf_new_metadata copies them
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    tensors = []
    for tensor in reader.tensors:
        data, ttype = tensor.data, tensor.tensor_type
        if tensor.name in pairs:
            prefix = pairs[tensor.name]
            a, b = (np.array(weights[f"{prefix}.{k}"].astype(mx.float32)) for k in ("lora_a", "lora_b"))
            data, ttype = quantize(fused_weight(dequantize(data, ttype), a, b, scale), qtype), qtype
        tensors.append((tensor.name, data, ttype))
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, ttype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data, tensor_endianess=reader.endianess)
    writer.close()
    tmp.replace(out_path)
    return out_path


# -- command line -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-train-translator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="mlx-lm folder of the base (default: the packaged translator's)")
    parser.add_argument("--manifest", help="dev-split JSONL (id, zh, en); default: the HSK dev split")
    parser.add_argument("-o", "--output", help=f"adapter folder (default: <cache dir>/{TRAINED_LORA_DIR})")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--layers", type=int, default=8, help="LoRA on the last N decoder blocks")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--keys", nargs="+", default=list(DEFAULT_KEYS), choices=sorted(GGUF_BLOCK_NAMES))
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--val", type=int, default=64, help="dev sentences held out for validation loss")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N shuffled dev sentences (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-only", action="store_true", help="only write adapter.gguf from an adapter folder")
    parser.add_argument("--fuse-only", action="store_true", help=f"only write {FUSED_GGUF} from an adapter folder")
    parser.add_argument("--fused-type", default="q8_0", choices=FUSED_TYPES, help="storage of the fused weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    out = Path(opts.output) if opts.output else trained_lora_dir()
    if opts.export_only:
        print(export_gguf(out))
        return
    from ..translation.local import packaged_translator_gguf

    if opts.fuse_only:
        print(fuse_gguf(out, packaged_translator_gguf(), fused_type=opts.fused_type))
        return
    if argv is None:
        from ..common.blas import ensure_fast_blas

        ensure_fast_blas()  # MLX on Linux is fast only with the system OpenBLAS: re-executes this command
    from ..translation.local import CONVERT_HINT, packaged_translator_converted, packaged_translator_dir

    if opts.model is None and not packaged_translator_converted():
        sys.exit(f"error: the packaged translator has no mlx-lm folder yet; {CONVERT_HINT}")
    model_dir = opts.model or packaged_translator_dir()
    manifest = read_jsonl(opts.manifest) if opts.manifest else build_hsk_manifest("dev")
    train_rows, val_rows = split_rows(chat_rows(manifest), opts.val, opts.seed)
    train_rows = train_rows[: opts.limit or None]
    print(f"training on {len(train_rows)} dev sentences, {len(val_rows)} for validation -> {out}", file=sys.stderr)
    log = train_adapter(
        model_dir, out, train_rows, val_rows, num_layers=opts.layers, rank=opts.rank, alpha=opts.alpha,
        dropout=opts.dropout, keys=tuple(opts.keys), steps=opts.steps, batch_size=opts.batch_size,
        learning_rate=opts.lr, warmup=opts.warmup, steps_per_eval=opts.val_every, seed=opts.seed,
    )  # fmt: skip
    print(f"trained in {log['wall_s']:.0f} s, peak memory {log['peak_memory_gb']:.2f} GB", file=sys.stderr)
    print(export_gguf(out))
    if opts.model is None:  # fusing needs the GGUF the adapter was trained on
        print(fuse_gguf(out, packaged_translator_gguf(), fused_type=opts.fused_type))


if __name__ == "__main__":
    main()
