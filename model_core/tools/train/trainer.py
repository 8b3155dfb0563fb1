"""LoRA training of the Fun-ASR-Nano LLM over cached audio rows: the loop, validation, checkpoints, exact resume.

Built on mlx-lm's tuner and MLX's optimizers: the adapter layers are fun_asr_nano.lora's (mlx-lm LoRALinear),
the schedule is tuner.utils.build_schedule (linear warm-up + cosine decay), validation loss is tuner.trainer.evaluate
with our loss and batch iterator. The loop itself is ours because tuner.trainer.train has no gradient clipping, no
resumable optimizer / sampler state and no decoding metrics.

One step = one optimizer update over `grad_accumulation` micro-batches of `batch_size` rows drawn by the mix
sampler. Dropout draws from MLX's global generator, re-seeded from (seed, step, micro-batch) before each
micro-batch, so a run's randomness is a function of its position: a resumed run repeats the uninterrupted one
exactly (adapter, optimizer moments, step, sampler state, metrics history all come back from the checkpoint).
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_unflatten
from mlx_lm.tuner.trainer import evaluate
from mlx_lm.tuner.utils import build_schedule

from ...fun_asr_nano.api import FunAsrNano
from ...fun_asr_nano.generate import GenerationConfig, generate
from ...fun_asr_nano.lora import PRESETS, LoraConfig, add_lora, load_weights_into, save_adapter
from .batches import loss, make_batch
from .data import DEFAULT_MIX, Example, MixSampler
from .features import FeatureCache
from .metrics import corpus_bleu, corpus_cer

T = TypeVar("T")
CHECKPOINTS = "checkpoints"
OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"


@dataclass
class TrainConfig:
    """Everything a run needs besides its data. `None` fields come from the LoRA preset (lora.PRESETS)."""

    preset: str = "seed"
    rank: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    keys: tuple[str, ...] | None = None
    learning_rate: float | None = None
    epochs: float | None = None
    steps: int | None = None  # optimizer updates; default: epochs over the training rows
    batch_size: int | None = None
    grad_accumulation: int | None = None
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 0
    eval_every: int = 50
    save_every: int = 100
    val_decode_rows: int = 32  # held-out rows greedily decoded for CER / BLEU at each validation
    max_new_tokens: int = 128
    task: str = "translate"  # the adapter's task (adapter_config.json)

    def lora(self) -> LoraConfig:
        base = PRESETS[self.preset]
        t = base.training
        training = replace(
            t, learning_rate=_pick(self.learning_rate, t.learning_rate),
            batch_size=_pick(self.batch_size, t.batch_size),
            grad_accumulation=_pick(self.grad_accumulation, t.grad_accumulation),
            warmup_steps=_pick(self.warmup_steps, t.warmup_steps),
            epochs=math.ceil(self.epochs) if self.epochs is not None else t.epochs,
        )  # fmt: skip
        return replace(
            base, rank=_pick(self.rank, base.rank), alpha=_pick(self.alpha, base.alpha),
            dropout=_pick(self.dropout, base.dropout), keys=_pick(self.keys, base.keys), training=training,
        )  # fmt: skip

    def total_steps(self, train_rows: int) -> int:
        if self.steps is not None:
            return self.steps
        t = self.lora().training
        epochs = self.epochs if self.epochs is not None else t.epochs
        return max(1, math.ceil(epochs * train_rows / (t.batch_size * t.grad_accumulation)))


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def micro_seed(seed: int, step: int, micro: int) -> int:
    return zlib.crc32(f"{seed}:{step}:{micro}".encode())


class Trainer:
    """Owns the LoRA-wrapped LLM of `asr`, its optimizer and the sampler. `out` holds checkpoints, the final
    adapter (out/adapter), metrics.jsonl and curves.png."""

    def __init__(
        self, asr: FunAsrNano, cache: FeatureCache, train: Sequence[Example], val: Sequence[Example],
        config: TrainConfig, out: str | Path,
    ) -> None:  # fmt: skip
        if not train:
            raise ValueError("no training rows")
        self.asr, self.cache, self.train_rows, self.val_rows = asr, cache, list(train), list(val)
        self.config, self.out = config, Path(out)
        self.lora = config.lora()
        self.hyper = self.lora.training
        self.total = config.total_steps(len(self.train_rows))
        self.llm = asr.model.llm
        add_lora(self.llm, self.lora)
        warmup = min(self.hyper.warmup_steps, max(0, self.total - 1))
        schedule = build_schedule({
            "name": "cosine_decay", "arguments": [self.hyper.learning_rate, max(1, self.total - warmup), 0.0],
            "warmup": warmup,
        })  # fmt: skip
        self.optimizer = optim.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
        self.optimizer.init(self.llm.trainable_parameters())
        self.sampler = MixSampler(self.train_rows, config.mix, config.seed)
        self.value_and_grad = nn.value_and_grad(self.llm, loss)
        self.step = 0
        self.history: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}

    # -- one update -------------------------------------------------------------------------------------

    def update(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.llm.train()
        grads: Any = None
        losses, tokens = [], 0
        for micro in range(self.hyper.grad_accumulation):
            mx.random.seed(micro_seed(self.config.seed, self.step, micro))
            rows = [self.train_rows[i] for i in self.sampler.take(self.hyper.batch_size)]
            batch = make_batch(self.asr, self.cache, rows)
            (value, count), g = self.value_and_grad(self.llm, *batch.arrays())
            grads = g if grads is None else tree_map(lambda a, b: a + b, grads, g)
            mx.eval(value, count, grads)
            losses.append(value.item())
            tokens += int(count.item())
        grads = tree_map(lambda g: g / self.hyper.grad_accumulation, grads)
        grads, norm = optim.clip_grad_norm(grads, self.config.max_grad_norm)
        learning_rate = float(self.optimizer.learning_rate.item())
        self.optimizer.update(self.llm, grads)
        mx.eval(self.llm.trainable_parameters(), self.optimizer.state)
        self.step += 1
        seconds = time.perf_counter() - t0
        record = {
            "step": self.step, "loss": sum(losses) / len(losses), "tokens": tokens, "learning_rate": learning_rate,
            "grad_norm": float(norm.item()), "seconds": seconds, "tokens_per_s": tokens / seconds,
        }  # fmt: skip
        self.history["train"].append(record)
        return record

    # -- validation -------------------------------------------------------------------------------------

    def batches(self, rows: Sequence[Example], batch_size: int) -> Iterator[tuple[mx.array, mx.array, mx.array]]:
        for start in range(0, len(rows), batch_size):
            yield make_batch(self.asr, self.cache, rows[start : start + batch_size]).arrays()

    def validation_loss(self, rows: Sequence[Example] | None = None) -> float:
        rows = list(self.val_rows if rows is None else rows)

        def iterate(dataset: Sequence[Example], batch_size: int, **_: Any) -> Iterator[Any]:
            return self.batches(dataset, batch_size)  # mlx-lm's iterate_batches signature

        value = evaluate(self.llm, rows, self.hyper.batch_size, -1, loss=loss, iterate_batches=iterate)
        self.llm.train()
        return float(value)

    def decode(self, example: Example) -> str:
        """Greedy decoding through the runtime's prompt assembly and generate(), adapter on (unfused, MLX)."""
        self.llm.eval()
        prompt = self.asr.prompt_embeddings(mx.array(self.cache.rows(example.audio)), example.prompt)
        config = GenerationConfig(max_tokens=self.config.max_new_tokens)
        out = generate(self.llm, prompt, config, self.asr.model.args.eos_token_ids, backend="mlx")
        self.llm.train()
        return self.asr.decode(out.tokens)

    def validate(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        record: dict[str, Any] = {"step": self.step}
        if not self.val_rows:
            return record
        record["val_loss"] = self.validation_loss()
        decoded = self.val_rows[: self.config.val_decode_rows]
        pairs: dict[str, tuple[list[str], list[str]]] = {"transcribe": ([], []), "translate": ([], [])}
        for e in decoded:
            if e.kind in pairs:
                pairs[e.kind][0].append(e.target)
                pairs[e.kind][1].append(self.decode(e))
        if pairs["transcribe"][0]:
            record["cer"] = corpus_cer(*pairs["transcribe"])
        if pairs["translate"][0]:
            record["bleu"] = corpus_bleu(*pairs["translate"])
        record["seconds"] = time.perf_counter() - t0
        self.history["val"].append(record)
        return record

    # -- checkpoints ------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        folder = self.out / CHECKPOINTS / f"step-{self.step:07d}"
        save_adapter(self.llm, folder, self.lora, self.config.task)
        mx.save_safetensors(str(folder / OPTIMIZER_FILE), dict(tree_flatten(self.optimizer.state)))
        state = {"step": self.step, "sampler": self.sampler.state(), "history": self.history,
                 "config": asdict(self.config)}  # fmt: skip
        (folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        return folder

    def resume(self, folder: str | Path) -> None:
        """Continue from a checkpoint folder (save_checkpoint's), exactly where it stopped."""
        folder = Path(folder)
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        loaded = mx.load(str(folder / "adapters.safetensors"))
        assert isinstance(loaded, dict)
        load_weights_into(self.llm, loaded, str(folder))
        moments = mx.load(str(folder / OPTIMIZER_FILE))
        assert isinstance(moments, dict)
        self.optimizer.state = tree_unflatten(list(moments.items()))
        self.step = int(state["step"])
        self.sampler.restore(state["sampler"])
        self.history = state["history"]

    def save_final(self) -> Path:
        return save_adapter(self.llm, self.out / "adapter", self.lora, self.config.task)

    # -- the run ----------------------------------------------------------------------------------------

    def fit(self, on_step: Callable[[dict[str, Any]], None] | None = None) -> Path:
        """Train to `total` steps (from wherever the trainer stands), validating every eval_every steps and at
        the end, checkpointing every save_every steps and at the end; returns the final adapter folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        log = (self.out / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            if self.step == 0 and self.val_rows:
                log.write(json.dumps(self.validate()) + "\n")
            while self.step < self.total:
                record = self.update()
                last = self.step == self.total
                if self.val_rows and (self.step % self.config.eval_every == 0 or last):
                    record = {**record, **self.validate()}
                if self.step % self.config.save_every == 0 or last:
                    self.save_checkpoint()
                log.write(json.dumps(record) + "\n")
                log.flush()
                if on_step is not None:
                    on_step(record)
        finally:
            log.close()
        return self.save_final()


def latest_checkpoint(out: str | Path) -> Path | None:
    found = sorted((Path(out) / CHECKPOINTS).glob("step-*"))
    return found[-1] if found else None
