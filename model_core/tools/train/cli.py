"""dfn-train: the flags of each sub-command and main()."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import __doc__ as OVERVIEW
from .data import parse_mix
from .trainer import TrainConfig

HINT = "the training tools need the `train` extra: pip install 'dora-funasr-nano[train]'"


def _json_out(result: dict[str, Any], path: str | None) -> None:
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")


def _teacher(opts: argparse.Namespace) -> Any:
    if opts.teacher == "packaged":
        from ...translation.local import load_local_translator

        return load_local_translator(engine=opts.teacher_engine)
    from ...translation.remote import RemoteTranslator

    return RemoteTranslator(opts.teacher, model=opts.teacher_model, api_key_env=opts.teacher_key_env)


def build_data(opts: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ...fun_asr_nano.loading import load_tokenizer, resolve_model_dir
    from .data import (
        build_task_rows,
        drop_eval_examples,
        read_rows,
        read_training_manifest,
        speech_length,
        write_chatml,
    )
    from .features import read_audio

    manifest, held = read_training_manifest(opts.manifest)
    instructions, held_instructions = drop_eval_examples([e for path in opts.instructions for e in read_rows(path)])
    dropped = len(held) + held_instructions
    _say_dropped(dropped)
    teacher = _teacher(opts)
    try:
        with tqdm(total=len(manifest), desc="teacher translations", unit="row") as bar:
            report = build_task_rows(manifest, teacher, on_row=bar.update)
    finally:
        teacher.close()
    examples = report.examples + instructions
    tokenizer = load_tokenizer(resolve_model_dir(opts.model))
    written = write_chatml(
        examples, opts.out, lambda text: len(tokenizer.encode(text)), lambda a: speech_length(read_audio(a).size)
    )
    kinds = {k: sum(e.kind == k for e in examples) for k in ("transcribe", "translate", "instruction")}
    summary = {"rows": written, "kinds": kinds, "teacher_failures": report.failed, "hsk_eval_dropped": dropped}
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _say_dropped(count: int) -> None:
    if count:
        print(f"dropped {count} HSK evaluation sentence(s): evaluation-only, never trained on", file=sys.stderr)


def train_config(opts: argparse.Namespace) -> TrainConfig:
    """The `train` flags as a TrainConfig (None: the preset's value)."""
    return TrainConfig(
        preset=opts.preset, rank=opts.rank, alpha=opts.alpha, dropout=opts.dropout,
        keys=tuple(opts.keys) if opts.keys else None, learning_rate=opts.learning_rate, epochs=opts.epochs,
        steps=opts.steps, batch_size=opts.batch_size, grad_accumulation=opts.grad_accumulation,
        warmup_steps=opts.warmup_steps, weight_decay=opts.weight_decay, max_grad_norm=opts.max_grad_norm,
        mix=parse_mix(opts.mix), seed=opts.seed, eval_every=opts.eval_every, save_every=opts.save_every,
        val_decode_rows=opts.val_decode_rows, max_new_tokens=opts.max_new_tokens, task=opts.task,
    )  # fmt: skip


def train(opts: argparse.Namespace) -> int:
    import mlx.core as mx
    from tqdm import tqdm

    from ...fun_asr_nano.api import FunAsrNano
    from ...fun_asr_nano.lora import apply_adapter
    from .data import drop_eval_examples, read_rows, split_heldout
    from .features import FeatureCache
    from .plot import plot_curves
    from .trainer import Trainer, latest_checkpoint

    rows, held = drop_eval_examples([e for path in opts.data for e in read_rows(path)])
    _say_dropped(held)
    if opts.val:
        train_rows, val_rows = rows, [e for path in opts.val for e in read_rows(path)]
    else:
        train_rows, val_rows = split_heldout(rows, opts.val_fraction, opts.seed)
    config = train_config(opts)
    mx.random.seed(opts.seed)
    asr = FunAsrNano.load(opts.model, dtype=mx.float32, backend="mlx")  # validation decodes the unfused adapter
    if opts.base_adapter:  # a fine-tune that is part of the base from now on
        apply_adapter(asr.model.llm, opts.base_adapter)
    cache = FeatureCache(asr, opts.cache or Path(opts.out) / "features")
    audios = sorted({e.audio for e in train_rows + val_rows})
    for audio in tqdm(audios, desc="audio rows (encoder + adaptor, cached)", unit="file"):
        cache.rows(audio)
    trainer = Trainer(asr, cache, train_rows, val_rows, config, opts.out)
    checkpoint = latest_checkpoint(opts.out) if opts.resume else None
    if checkpoint is not None:
        trainer.resume(checkpoint)
        print(f"resumed from {checkpoint} at step {trainer.step}", file=sys.stderr)
    with tqdm(total=trainer.total, initial=trainer.step, desc="training", unit="step") as bar:

        def on_step(record: dict[str, Any]) -> None:
            shown = {k: f"{record[k]:.3g}" for k in ("loss", "val_loss", "cer", "bleu") if k in record}
            bar.set_postfix(shown, refresh=False)
            bar.update(1)

        adapter = trainer.fit(on_step)
    curves = plot_curves(trainer.history, Path(opts.out) / "curves.png")
    last = trainer.history["val"][-1] if trainer.history["val"] else {}
    summary = {"adapter": str(adapter), "curves": str(curves), "steps": trainer.step, "train_rows": len(train_rows),
               "val_rows": len(val_rows), "last_validation": last,
               "tokens_per_s": _median([r["tokens_per_s"] for r in trainer.history["train"]])}  # fmt: skip
    _json_out(summary, None)
    return 0


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def swap_check(opts: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import read_manifest
    from .swap import swap_llm_check

    manifest = read_manifest(opts.manifest)
    with tqdm(total=2 * len(manifest), desc="transcribing (before, after)", unit="utt") as bar:
        result = swap_llm_check(opts.model, opts.llm, manifest, opts.max_new_tokens, on_row=bar.update)
    _json_out(result, opts.json)
    return 0


def real_shape(opts: argparse.Namespace) -> int:
    import os

    from .real_shape import real_shape_step

    result = real_shape_step(opts.batch_size, opts.seconds, opts.target_tokens, opts.preset, opts.repeats, opts.tiny)
    result["load_average"] = list(os.getloadavg())
    result["cpu_count"] = os.cpu_count()
    _json_out(result, opts.json)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("dfn-train", description=(OVERVIEW or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-data", help="ASR manifest -> ChatML rows for both tasks (teacher translations)")
    p.add_argument("--manifest", required=True, help='JSON Lines {"audio": path, "text": Chinese transcript}')
    p.add_argument("--out", required=True, help="ChatML JSONL to write (funasr's training format)")
    p.add_argument("--model", default="FunAudioLLM/Fun-ASR-Nano-2512", help="its tokenizer counts text_length")
    p.add_argument("--teacher", default="packaged", help="'packaged' or an OpenAI-compatible base URL")
    p.add_argument("--teacher-model", default="qwen2.5-coder-0.5b-instruct", help="model name for a server")
    p.add_argument("--teacher-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    p.add_argument("--teacher-engine", default="auto", help="packaged translator's engine: auto, llama-cpp, mlx")
    p.add_argument("--instructions", nargs="*", default=[], help="instruction rows to add (ChatML or seed JSON)")
    p.set_defaults(run=build_data)

    p = sub.add_parser("train", help="train a LoRA adapter (resumable; progress bar; curves.png)")
    p.add_argument("--data", nargs="+", required=True, help="ChatML JSONL and/or seed JSON files")
    p.add_argument("--val", nargs="*", default=[], help="held-out rows (default: --val-fraction of the audio)")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--model", default="FunAudioLLM/Fun-ASR-Nano-2512", help="checkpoint folder or model id")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, adapter/, metrics.jsonl, curves.png")
    p.add_argument("--base-adapter", help="an adapter fused into the base model before training (a fine-tune)")
    p.add_argument("--cache", help="feature cache folder (default OUT/features)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint, exactly")
    p.add_argument("--preset", choices=("seed", "funasr"), default="seed")
    p.add_argument("--task", choices=("translate", "transcribe"), default="translate")
    p.add_argument("--rank", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--keys", nargs="+", help="projections inside a block, e.g. self_attn.q_proj mlp.down_proj")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--epochs", type=float)
    p.add_argument("--steps", type=int, help="optimizer updates (default: the preset's epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accumulation", type=int)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--mix", default="60/30/10", help="transcribe/translate/instruction sampling weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--val-decode-rows", type=int, default=32, help="held-out rows decoded for CER / BLEU")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.set_defaults(run=train)

    p = sub.add_parser("swap-llm-check", help="Phase 1: CER before / after swapping in another Qwen3 (no output)")
    p.add_argument("--model", default="FunAudioLLM/Fun-ASR-Nano-2512")
    p.add_argument("--llm", required=True, help="a Qwen3 checkpoint folder of the same shape (config + safetensors)")
    p.add_argument("--manifest", required=True, help='JSON Lines {"audio": path, "text": Chinese transcript}')
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--json", help="also write the report here")
    p.set_defaults(run=swap_check)

    p = sub.add_parser("real-shape-step", help="time and memory of LoRA steps at the real architecture")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0, help="audio per row")
    p.add_argument("--target-tokens", type=int, default=32)
    p.add_argument("--preset", choices=("seed", "funasr"), default="seed")
    p.add_argument("--repeats", type=int, default=2, help="timed updates after one warm-up")
    p.add_argument("--tiny", action="store_true", help="the tiny shapes (a quick smoke run)")
    p.add_argument("--json", help="also write the numbers here")
    p.set_defaults(run=real_shape)
    return parser.parse_args(argv)


NEEDS = {"train": ("jiwer", "sacrebleu", "matplotlib"), "swap-llm-check": ("jiwer",)}


def main(argv: list[str] | None = None) -> int:
    import importlib.util

    opts = parse_args(argv)
    if argv is None:  # a command, not a call: Linux MLX needs OpenBLAS (re-executes this command with it preloaded)
        from ...common.blas import ensure_fast_blas

        ensure_fast_blas()
    missing = [m for m in NEEDS.get(opts.command, ()) if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{', '.join(missing)} missing: {HINT}", file=sys.stderr)
        return 2
    return int(opts.run(opts))


if __name__ == "__main__":
    raise SystemExit(main())
