"""model_core: everything dora-funasr-nano computes, with no dora and no pyarrow.

    fun_asr_nano/   the Fun-ASR-Nano model (front end, encoder, adaptor, prompts, generation, caches, loading,
                    LoRA) and its numpy backend
    translation/    text translators behind one protocol (llama.cpp, MLX, remote), prompt, breaker, sentences
    speech/         audio I/O and microphone, Silero VAD, Whisper, TTS
    common/         typed errors, packaged model assets, BLAS set-up, the DFN_* settings
    tools/          commands outside the runtime path: conversion, benchmark, evaluation, model preparation

Importing this package imports nothing else: each subpackage is imported on its own.
"""
