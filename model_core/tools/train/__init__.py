"""dfn-train: LoRA adapters for the Fun-ASR-Nano LLM (encoder and adaptor frozen), on mlx-lm's tuner.

    dfn-train build-data --manifest asr.jsonl --out rows.jsonl            # + teacher translations (packaged / URL)
    dfn-train train --data rows.jsonl --out runs/zh-en [--preset seed|funasr] [--resume]
    dfn-train swap-llm-check --llm Qwen3-0.6B-instruct/ --manifest asr.jsonl     # Phase 1, a measurement only
    dfn-train real-shape-step                                               # step cost at the real shapes
    python -m dora_funasr_nano.model_core.tools.train ...                   # the same command

Modules: data (ChatML / seed rows, task-row builder, mix sampler, held-out split), features (encoder + adaptor
output cached on disk by audio hash and model fingerprint), batches (right-padded prompt + target batches, the
target-only loss), trainer (loop, validation loss / CER / BLEU, checkpoints, exact resume), metrics, plot
(curves.png), swap (the LLM-swap experiment), real_shape (step time and memory at the real shapes), cli.
"""
