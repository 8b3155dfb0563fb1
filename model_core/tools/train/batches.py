"""Right-padded batches of prompt embeddings + target tokens, and the loss on the target tokens only.

One row is the runtime's prompt (FunAsrNano.prompt_embeddings: ChatML prefix, audio rows, suffix; P rows) followed
by the embedded target tokens t_0..t_{n-2}, where t = tokenizer(target) + <|im_end|> (the ChatML end of turn the
runtime stops on). Position P-1+k predicts t_k, so the loss covers every target token and the end of turn, and
nothing of the prompt. Rows are padded on the right: attention is causal, so padding never reaches a real position.

The target positions are listed (flat indices into B x L), and only their hidden states go through the output
head: the same loss as masking full logits, without a (B, L, 151,936) logits tensor for the prompt positions.
`loss(llm, embeddings, positions, targets) -> (mean loss, tokens)` has mlx-lm's loss signature (tuner.trainer),
so its `evaluate` runs it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from ...fun_asr_nano.api import FunAsrNano
from .data import Example
from .features import FeatureCache

IM_END = "<|im_end|>"


@dataclass
class Batch:
    embeddings: mx.array  # (B, L, hidden), right-padded
    positions: mx.array  # (N,) int32: flat indices b * L + l of the positions that predict a target token
    targets: mx.array  # (N,) int32: the token each of those positions must predict

    def arrays(self) -> tuple[mx.array, mx.array, mx.array]:
        return self.embeddings, self.positions, self.targets

    @property
    def tokens(self) -> int:
        return int(self.targets.size)


def target_ids(asr: FunAsrNano, text: str) -> list[int]:
    return list(asr.tokenizer.encode(text)) + [int(asr.tokenizer.convert_tokens_to_ids(IM_END))]


def make_batch(asr: FunAsrNano, cache: FeatureCache, examples: Sequence[Example]) -> Batch:
    return assemble(
        asr, [mx.array(cache.rows(e.audio)) for e in examples], [e.prompt for e in examples],
        [target_ids(asr, e.target) for e in examples],
    )  # fmt: skip


def assemble(
    asr: FunAsrNano, audio_rows: Sequence[mx.array], prompts: Sequence[str], targets: Sequence[list[int]]
) -> Batch:
    """Per row: audio rows, user prompt, target ids (end of turn included) -> one right-padded batch."""
    rows = []
    for audio, prompt_text, ids in zip(audio_rows, prompts, targets, strict=True):
        prompt = asr.prompt_embeddings(audio, prompt_text)
        embedded = asr.model.embed_tokens(mx.array(ids[:-1], dtype=mx.int32)).astype(prompt.dtype)
        rows.append((mx.concatenate([prompt, embedded], axis=0), prompt.shape[0], ids))
    length = max(r[0].shape[0] for r in rows)
    hidden = rows[0][0].shape[1]
    positions: list[int] = []
    predicted: list[int] = []
    padded = []
    for i, (embedding, prompt_rows, ids) in enumerate(rows):
        positions += range(i * length + prompt_rows - 1, i * length + prompt_rows - 1 + len(ids))
        predicted += ids
        pad = mx.zeros((length - embedding.shape[0], hidden), embedding.dtype)
        padded.append(mx.concatenate([embedding, pad], axis=0))
    return Batch(mx.stack(padded), mx.array(positions, dtype=mx.int32), mx.array(predicted, dtype=mx.int32))


def output_head(llm: nn.Module, hidden: mx.array) -> mx.array:
    """qwen3.Model's last step: tied embeddings or lm_head."""
    if llm.args.tie_word_embeddings:
        return llm.model.embed_tokens.as_linear(hidden)
    return llm.lm_head(hidden)


def loss(llm: nn.Module, embeddings: mx.array, positions: mx.array, targets: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over the target positions, and their count."""
    batch, length, width = embeddings.shape
    placeholder_ids = mx.zeros((batch, length), dtype=mx.int32)  # ignored: the embeddings are given
    hidden = llm.model(placeholder_ids, None, embeddings).reshape(batch * length, width)
    logits = output_head(llm, hidden[positions]).astype(mx.float32)
    tokens = mx.array(targets.size, dtype=mx.float32)
    return nn.losses.cross_entropy(logits, targets).sum() / tokens, tokens
