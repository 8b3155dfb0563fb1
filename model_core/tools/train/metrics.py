"""Validation scores, computed as dfn-eval computes them (tools/evaluation/scoring.py): corpus CER with jiwer on
normalised Chinese, corpus BLEU with sacrebleu (13a)."""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluation.scoring import BLEU_TOKENIZER, normalize_zh


def corpus_cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    import jiwer

    refs = [normalize_zh(r) for r in references]
    hyps = [normalize_zh(h) for h in hypotheses]
    kept = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]  # CER is undefined on an empty reference
    if not kept:
        raise ValueError("every reference is empty after normalisation")
    return float(jiwer.cer([r for r, _ in kept], [h for _, h in kept]))


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    from sacrebleu.metrics import BLEU

    return float(BLEU(tokenize=BLEU_TOKENIZER).corpus_score(list(hypotheses), [list(references)]).score)
