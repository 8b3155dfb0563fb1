"""dfn-bench: the dataflows A/B on the same speech (latency, quality, cost), the soak, and the dora hop's cost.
Outside the runtime import path; needs the `bench` extra (psutil, matplotlib, opencc) and `eval` (sacrebleu, jiwer)."""
