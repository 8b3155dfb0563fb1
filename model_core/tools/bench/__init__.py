"""Speed benchmark: our MLX Fun-ASR-Nano vs mlx-audio's port, at the real shapes with random weights.

No checkpoint is needed: both models are built from the published architecture (SenseVoiceEncoderSmall 50 + 20
blocks, adaptor, Qwen3-0.6B) and filled with the same seeded random weights, so they run the identical workload.
Per implementation and audio length it reports medians (after one warm-up) of: front end, encoder + adaptor,
LLM prefill (time to the first token), decode ms/token and the total, plus peak RSS. Each implementation runs in
its own child process so one does not inflate the other's memory. The machine's roofline (fp32 GEMM rate, memory
copy bandwidth) is measured in the same run and turned into floors for each stage.

Decoding is forced to exactly --decode-tokens tokens: no EOS id is passed (ours: `generate(..., eos_token_ids=())`
with the repetition guard off; mlx-audio: its `generate_step` is consumed without checking for EOS). Prefill is the
time from the audio rows to the first token, so it includes any set-up the decode path does before that token.
--backend mlx times our MLX encoder and decode paths instead of the numpy ones (mlx-audio always runs in MLX).

    dfn-funasr-bench --seconds 5 20 --repeats 3 --json bench.json
    python -m dora_funasr_nano.model_core.tools.bench --tiny      # the same command

Modules: workload (shapes, random weights, audio), impls (one timed utterance per implementation), runner (one
implementation per child process), roofline (machine rates and per-stage floors), machine (platform and
libraries), report (table and same-run ratios), plot (PNG), cli (flags and main).
"""
