"""Fun-ASR-Nano in MLX (SenseVoice encoder + adaptor + Qwen3), laid out as mlx-lm lays out a model:

    frontend.py   kaldi fbank + LFR features            encoder.py    SenseVoiceEncoderSmall
    adaptor.py    the audio adaptor, fake_token_len      model.py      ModelArgs, Model, sanitize (checkpoint names)
    prompts.py    task prompts as upstream builds them   generate.py   greedy / sampled decoding, batches, loop guard
    cache.py      KV caches and the PromptCache          loading.py    one loader for every published layout
    lora.py       adapters                               backends/     the numpy backend and the backend choice
    api.py        FunAsrNano: load once, transcribe / translate / transcribe_batch
    recognizer.py one segment at a time as the funasr node serves it: warm-up, partial texts every N tokens

    from dora_funasr_nano.model_core.fun_asr_nano import load
    asr = load("FunAudioLLM/Fun-ASR-Nano-2512")   # or a local folder
    print(asr.transcribe(samples_16k).text)
"""

from .api import FunAsrNano, Result, TranslationConfig, load
from .generate import GenerationConfig
from .prompts import TaskMode

__all__ = ["FunAsrNano", "GenerationConfig", "Result", "TaskMode", "TranslationConfig", "load"]
