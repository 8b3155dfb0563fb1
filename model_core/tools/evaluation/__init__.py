"""Quality harness (`dfn-eval`): the HSK zh->en evaluation set, BLEU/chrF/CER scoring, and runners that produce
hypotheses.

- `data`: the HSK manifest and its eval/dev split, JSON Lines manifests and hypothesis files, JSON reports;
- `scoring`: BLEU/chrF (translate) and CER (transcribe), per-group scores, latency summaries, the text table;
- `runs`: hypotheses from a translator (llama.cpp, its server, MLX) or from Whisper on espeak-ng Mandarin;
- `cli`: the `dfn-eval` command line.
"""
