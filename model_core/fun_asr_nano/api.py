"""Public API: load a checkpoint once, then transcribe (or translate, with a translation-adapted model).

asr = load("FunAudioLLM/Fun-ASR-Nano-2512")          # or a local folder; backend="auto" | "mlx" | "numpy"
result = asr.transcribe(samples_16k)                   # -> Result(text="...", backends=..., ...)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from ..common.errors import InvalidAudio, ModelNotLoaded, UnsupportedLanguage
from ..speech.audio import SAMPLE_RATE, check_segment
from ..translation.base import Translator
from ..translation.sentences import SentenceStreamer, split_sentences, stable_sentences
from .backends import Backends, choose_backends
from .cache import PromptCache
from .frontend import extract_features
from .generate import Generation, GenerationConfig, generate, generate_batch
from .loading import DEFAULT_MODEL, load_model, load_tokenizer
from .lora import Adapter, fuse_adapter, has_adapter, load_adapter
from .model import Model
from .prompts import TaskMode, chat_prompt, clean_response, user_prompt

MIN_AUDIO_S = 0.1  # below this the front end has too few frames to say anything
MAX_AUDIO_S = 30.0  # longer input makes the LLM loop: split it with the VAD first


@dataclass
class TranslationConfig:
    source_lang: str = "zh"
    target_lang: str = "en"
    max_output_tokens: int = 512
    temperature: float = 0.0
    stream_on_sentence: bool = False


@dataclass
class Result:
    text: str
    tokens: list[int]
    finish_reason: str  # eos | length | repetition
    audio_s: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    source_text: str = ""  # two-stage translation: the transcript that was translated
    backends: Backends = Backends("mlx", "mlx")  # what computed this result (encoder + adaptor, LLM)


class FunAsrNano:
    def __init__(self, model: Model, tokenizer: Any, model_dir: Path | None = None, backend: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer  # a transformers tokenizer
        self.model_dir = model_dir
        self.backends = choose_backends(model, backend)  # once: every call computes on these
        self.prompt_cache = PromptCache()  # the chat template's keys are computed once per process
        # a LoRA adapter (lora.py): unfused, it is switched on for its task only, request by request
        self.adapter: Adapter | None = None
        self.fused = False  # the adapter folded into the weights: on for every task
        # set by translation adapters; the published checkpoint only transcribes
        self.can_translate = False

    @classmethod
    def load(
        cls,
        path_or_id: str | os.PathLike = DEFAULT_MODEL,
        dtype: mx.Dtype | None = None,
        adapter: str | os.PathLike | None = None,
        low_memory: bool = False,
        backend: str | None = None,
        fuse: bool = False,
    ) -> FunAsrNano:
        """`adapter`: an mlx-lm LoRA adapter folder (see lora.py), kept unfused: on for its task (a translate
        adapter: TranslateToEnglish) and off for the others, so one loaded model serves both; `fuse=True` folds it
        into the weights instead (on for every task). A checkpoint trained with the official recipe
        (config.yaml `llm_conf.use_lora`) brings its adapter along. `low_memory`: audio encoder + adaptor weights
        stored in bf16, computed in the run dtype (loading.audio_weights_dtype). `backend`: auto | mlx | numpy
        (None: $DFN_BACKEND, default auto), see backends/__init__.py."""
        model, model_dir = load_model(path_or_id, dtype, low_memory=low_memory)
        found = model.adapter  # the official recipe's lora_A / lora_B, or a fine-tune fused into the weights
        if adapter and found is not None and has_adapter(model.llm):  # a fused one is just weights: adapt on top
            raise ModelNotLoaded(f"{model_dir} already holds a LoRA adapter (use_lora); pass no other adapter")
        found = load_adapter(model.llm, adapter) if adapter else found
        if found is not None and fuse:
            fuse_adapter(model.llm)
        asr = cls(model, load_tokenizer(model_dir), model_dir, backend)  # backends chosen on the final weights
        asr.adapter, asr.fused = found, found is not None and not has_adapter(model.llm)
        asr.can_translate = found is not None and found.task == "translate"
        return asr

    def adapter_on(self, task: TaskMode) -> bool:
        """Whether a request of `task` goes through the (unfused) adapter: a translation adapter for
        TranslateToEnglish only, a transcription fine-tune for every other task."""
        if self.adapter is None or self.fused:
            return self.fused
        return (task is TaskMode.TRANSLATE_TO_EN) == (self.adapter.task == "translate")

    # -- stages -------------------------------------------------------------------------------------------

    def features(self, audio: np.ndarray, max_audio_s: float = MAX_AUDIO_S) -> np.ndarray:
        """16 kHz mono float32 -> (T_lfr, 560), with the typed errors bad audio deserves."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise InvalidAudio(f"expected mono samples (1-D), got shape {audio.shape}")
        check_segment(audio, MIN_AUDIO_S, max_audio_s)
        return extract_features(audio, self.model.args.frontend)

    def audio_rows(self, features: np.ndarray) -> mx.array:
        """(T_lfr, 560) -> the (fake_token_len, hidden) rows that go into the prompt."""
        rows = self.model.encode_audio(mx.array(features)[None], backend=self.backends.encoder)[0]
        return rows[: self.model.audio_token_count(features.shape[0])]

    def prompt_embeddings(self, rows: mx.array, prompt: str) -> mx.array:
        chat = chat_prompt(prompt)
        prefix = mx.array(self.tokenizer.encode(chat.prefix), dtype=mx.int32)
        suffix = mx.array(self.tokenizer.encode(chat.suffix), dtype=mx.int32)
        before, after = self.model.embed_tokens(prefix), self.model.embed_tokens(suffix)
        return mx.concatenate([before, rows.astype(before.dtype), after], axis=0)

    def decode(self, tokens: list[int]) -> str:
        return clean_response(self.tokenizer.decode(tokens, skip_special_tokens=True))

    # -- tasks --------------------------------------------------------------------------------------------

    def transcribe(
        self,
        audio: np.ndarray,
        task: TaskMode = TaskMode.TRANSCRIBE,
        hotwords: Sequence[str] | None = None,
        itn: bool = True,
        generation: GenerationConfig | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> Result:
        """Speech -> text in the spoken language (TaskMode.TRANSCRIBE: Chinese)."""
        generation = generation or GenerationConfig()
        rows, timings, t2 = self._encode(audio)
        prompt = self.prompt_embeddings(rows, user_prompt(task, list(hotwords or []), itn))
        out = generate(
            self.model.llm, prompt, generation, self.model.args.eos_token_ids, on_token,
            backend=self.backends.decoder, prompt_cache=self.prompt_cache, adapter=self.adapter_on(task),
        )  # fmt: skip
        timings = self._with_llm(timings, t2)
        return Result(
            self.decode(out.tokens), out.tokens, out.finish_reason, audio.size / SAMPLE_RATE, timings,
            backends=self.backends,
        )  # fmt: skip

    def translate(
        self,
        audio: np.ndarray,
        config: TranslationConfig | None = None,
        on_token: Callable[[int], None] | None = None,
        translator: Translator | None = None,
        on_partial: Callable[[str, str], None] | None = None,
    ) -> Result:
        """Speech -> English.

        With a translation-adapted model (LoRA, `can_translate`) the model itself translates (unified). Otherwise,
        given a text `translator` (translation.local.load_local_translator(), or a RemoteTranslator), it transcribes
        and the translator translates (two-stage); `Result.source_text` holds the Chinese transcript.
        With `config.stream_on_sentence`, `on_partial(chinese, english)` is called per sentence as soon as it is
        complete: in two-stage mode sentences are translated while the transcript is still being decoded; in
        unified mode `chinese` is "" and `english` is each finished English sentence.
        """
        config = config or TranslationConfig()
        if (config.source_lang, config.target_lang) != ("zh", "en"):
            raise UnsupportedLanguage(f"{config.source_lang}->{config.target_lang}: only zh->en is supported")
        generation = GenerationConfig(max_tokens=config.max_output_tokens, temperature=config.temperature)
        report = on_partial if config.stream_on_sentence else None  # sentence by sentence
        stream = report is not None
        if self.can_translate:
            tokens: list[int] = []
            sent = 0  # English sentences already reported

            def on_english_token(token: int) -> None:
                nonlocal sent
                tokens.append(token)
                if report is not None:
                    done = stable_sentences(self.decode(tokens))
                    for sentence in done[sent:]:
                        report("", sentence)
                    sent = len(done)
                if on_token is not None:
                    on_token(token)

            result = self.transcribe(audio, TaskMode.TRANSLATE_TO_EN, generation=generation, on_token=on_english_token)
            if report is not None:
                done, tail = split_sentences(result.text)
                for sentence in done[sent:] + ([tail] if tail else []):
                    report("", sentence)
            return result
        if translator is None:
            raise UnsupportedLanguage(
                "this checkpoint transcribes only (Fun-ASR-Nano cannot translate); load a translation adapter, "
                "or pass a text translator (two-stage: funasr transcribe -> translate-text)"
            )
        streamer = SentenceStreamer(translator, on_partial=on_partial, context_sentences=2)
        heard: list[int] = []

        def on_chinese_token(token: int) -> None:
            heard.append(token)
            if stream:
                streamer.feed(self.decode(heard))  # translates each sentence as soon as it is complete
            if on_token is not None:
                on_token(token)

        transcript = self.transcribe(
            audio, TaskMode.TRANSCRIBE, generation=GenerationConfig(), on_token=on_chinese_token
        )
        t0 = time.perf_counter()
        if stream:
            english = streamer.finish(transcript.text)
        else:
            english = translator.translate(transcript.text, source_language=config.source_lang)
        timings = {**transcript.timings, "translate": time.perf_counter() - t0}
        timings["total"] = transcript.timings["total"] + timings["translate"]
        return Result(
            english.text, transcript.tokens, transcript.finish_reason, transcript.audio_s, timings, transcript.text,
            transcript.backends,
        )  # fmt: skip

    def transcribe_batch(
        self,
        audios: Sequence[np.ndarray],
        task: TaskMode | Sequence[TaskMode] = TaskMode.TRANSCRIBE,
        hotwords: Sequence[str] | None = None,
        itn: bool = True,
        generation: GenerationConfig | None = None,
    ) -> list[Result]:
        """Several segments at once: one padded encoder pass and one batched decode. Same tokens as one at a time.
        Upstream raises NotImplementedError for batches; here the padding is masked in the encoder, the adaptor
        and the LLM. `task`: one for all, or one per segment (with an unfused adapter, rows of different tasks
        share the batch, each with the adapter on or off)."""
        generation = generation or GenerationConfig()
        tasks = [task] * len(audios) if isinstance(task, TaskMode) else list(task)
        if len(tasks) != len(audios):
            raise ValueError(f"{len(tasks)} tasks for {len(audios)} segments")
        t0 = time.perf_counter()
        feats = [self.features(a) for a in audios]
        t1 = time.perf_counter()
        lengths = [f.shape[0] for f in feats]
        batch = np.zeros((len(feats), max(lengths), feats[0].shape[1]), np.float32)
        for i, f in enumerate(feats):
            batch[i, : f.shape[0]] = f
        encoded = self.model.encode_audio(mx.array(batch), mx.array(lengths))
        rows = [encoded[i, : self.model.audio_token_count(n)] for i, n in enumerate(lengths)]
        mx.eval(rows)
        t2 = time.perf_counter()
        words = list(hotwords or [])
        prompts = [self.prompt_embeddings(r, user_prompt(t, words, itn)) for r, t in zip(rows, tasks, strict=True)]
        outs = self._decode_rows(prompts, tasks, generation)
        used = Backends("mlx", self.backends.decoder)  # a padded batch's encoder pass runs in MLX
        t3 = time.perf_counter()
        timings = {"frontend": t1 - t0, "encoder": t2 - t1, "llm": t3 - t2, "total": t3 - t0}
        return [
            Result(self.decode(o.tokens), o.tokens, o.finish_reason, a.size / SAMPLE_RATE, timings, backends=used)
            for o, a in zip(outs, audios, strict=True)
        ]

    def transcribe_and_translate(
        self, audio: np.ndarray, generation: GenerationConfig | None = None
    ) -> tuple[Result, Result]:
        """One segment -> (Chinese transcript, English) from one model: the audio encoded once, then both prompts
        decoded as one batch of two rows, the adapter off for the transcript and on for the English. Needs a
        translation adapter kept unfused (UnsupportedLanguage otherwise)."""
        if not self.can_translate or self.fused:
            raise UnsupportedLanguage("transcript + English from one model needs an unfused translation adapter")
        generation = generation or GenerationConfig()
        rows, timings, t2 = self._encode(audio)
        tasks = [TaskMode.TRANSCRIBE, TaskMode.TRANSLATE_TO_EN]
        prompts = [self.prompt_embeddings(rows, user_prompt(t)) for t in tasks]
        chinese, english = self._decode_rows(prompts, tasks, generation)
        timings = self._with_llm(timings, t2)
        audio_s = audio.size / SAMPLE_RATE
        zh = Result(self.decode(chinese.tokens), chinese.tokens, chinese.finish_reason, audio_s, timings,
                    backends=self.backends)  # fmt: skip
        en = Result(self.decode(english.tokens), english.tokens, english.finish_reason, audio_s, timings, zh.text,
                    self.backends)  # fmt: skip
        return zh, en

    def _encode(self, audio: np.ndarray) -> tuple[mx.array, dict[str, float], float]:
        """Front end, then encoder + adaptor: the audio rows, the seconds of each, and when the LLM may start."""
        t0 = time.perf_counter()
        feats = self.features(audio)
        t1 = time.perf_counter()
        rows = self.audio_rows(feats)
        mx.eval(rows)
        t2 = time.perf_counter()
        return rows, {"frontend": t1 - t0, "encoder": t2 - t1}, t2

    @staticmethod
    def _with_llm(timings: dict[str, float], llm_started: float) -> dict[str, float]:
        llm = time.perf_counter() - llm_started
        return {**timings, "llm": llm, "total": timings["frontend"] + timings["encoder"] + llm}

    def _decode_rows(
        self, prompts: list[mx.array], tasks: Sequence[TaskMode], generation: GenerationConfig
    ) -> list[Generation]:
        eos = self.model.args.eos_token_ids
        flags = [self.adapter_on(t) for t in tasks]
        return generate_batch(self.model.llm, prompts, generation, eos, self.backends.decoder, adapter=flags)


# mlx-lm's shape: `load(path_or_id, ...)` as a function
load = FunAsrNano.load
