"""Proof "Learning, tiny model": dfn-train teaches a tiny random Fun-ASR-Nano to translate espeak-ng Mandarin.

The lifecycle of the real thing, at toy size:
1. the released model transcribes: stage 1 trains a transcription adapter (`dfn-train train --task transcribe`)
   that is then fused into the base, so "adapter off" has a transcript to give;
2. stage 2 trains the translation adapter on that base (`--base-adapter`), transcribe + translate rows mixed, with
   validation (loss, CER, BLEU) and checkpoints;
3. with the adapter on, greedy decoding of the translate prompt gives the trained English; with it off, the
   transcribe prompt gives the trained Chinese; the adapter folded into the weights gives the same logits and
   tokens; a trainer resumed from a checkpoint ends bit for bit where the uninterrupted run ended, and the adapter
   loaded from disk is that same adapter.

4. the unified graph under `dora run`, on the phrases joined into one file with pauses, prints the trained
   English of each segment and, from the same model with the adapter off, the trained Chinese. The training
   clips are the segments the VAD cuts from that file (the graph's VAD cuts the same ones), since a random
   encoder this small tells apart only the audio it was trained on.

The checkpoint is tests/tiny_checkpoint.py's (built by the official code, real Qwen3 tokenizer) at hidden size 64:
at 32, the tied 151,936-row output head leaves too small a margin between random token embeddings for an adapter
to make the target the argmax within a CI-sized run (measured: 0 of 8 rows after 120 steps). The
phrases differ in length, so their audio rows differ in number too: the random encoder maps clips of one length
to rows too alike (cosine 0.92-0.96) for a CI-sized run to tell them apart..
"""

import io
import json
import shutil
import subprocess

import mlx.core as mx
import numpy as np
import pytest
import soundfile as sf
from dora_graphs import dora_run, finals
from parity import require

from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.cache import make_cache, prefill
from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig, generate
from dora_funasr_nano.model_core.fun_asr_nano.lora import adapter_rows, adapter_weights, apply_adapter, load_adapter
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TRANSLATE_TO_ENGLISH_PROMPT, TaskMode, user_prompt
from dora_funasr_nano.model_core.speech.audio import resample
from dora_funasr_nano.model_core.speech.vad import SileroVad, SpeechSegmenter
from dora_funasr_nano.model_core.tools import convert
from dora_funasr_nano.model_core.tools.train import cli
from dora_funasr_nano.model_core.tools.train.data import Example, read_rows, speech_length, write_chatml
from dora_funasr_nano.model_core.tools.train.features import FeatureCache
from dora_funasr_nano.model_core.tools.train.trainer import Trainer

PHRASES = [  # (tone-numbered pinyin for espeak-ng, transcript, English); lengths differ, so do the audio rows
    ("ni3 hao3", "你好", "Hello."),
    ("xie4 xie4 ni3", "谢谢你", "Thank you."),
    ("wo3 men5 ming2 tian1 jian4", "我们明天见", "See you tomorrow."),
    ("jin1 tian1 tian1 qi4 fei1 chang2 hao3", "今天天气非常好", "The weather is very nice today."),
]
HIDDEN = 64
COMMON = ["--rank", "8", "--alpha", "16", "--batch-size", "4", "--grad-accumulation", "1", "--warmup-steps", "5",
          "--max-new-tokens", "12", "--val-decode-rows", "8"]  # fmt: skip
STAGE1 = ["--task", "transcribe", "--mix", "100/0/0", "--steps", "40", "--learning-rate", "1e-2", "--dropout", "0"]
STEPS, RESUME_AT = 90, 80
# translate rows weigh more than the recipe's 60/30/10 here: the base already transcribes, the English is new
STAGE2 = ["--task", "translate", "--mix", "30/70/0", "--steps", str(STEPS), "--learning-rate", "1e-2",
          "--dropout", "0.05", "--eval-every", "30", "--save-every", str(RESUME_AT)]  # fmt: skip


def espeak(pinyin: str) -> np.ndarray:
    out = subprocess.run(
        ["espeak-ng", "-v", "cmn-latn-pinyin", "--stdout"], input=pinyin.encode(), capture_output=True, check=True
    ).stdout
    samples, rate = sf.read(io.BytesIO(out), dtype="float32")
    return resample(samples, rate)


def phrases_file(path) -> list[np.ndarray]:
    """The phrases in one file, 1 s of silence around each; returns the segments the VAD cuts from it."""
    pause = np.zeros(16000, np.float32)
    joined = np.concatenate([pause, *(x for pinyin, _, _ in PHRASES for x in (espeak(pinyin), pause))])
    sf.write(path, joined, 16000)
    segmenter = SpeechSegmenter(SileroVad())
    segments = [*segmenter.push(joined), *segmenter.flush()]
    assert len(segments) == len(PHRASES), [(s.start_s, s.end_s) for s in segments]
    return [s.samples for s in segments]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (apt-get install espeak-ng)")
    import tiny_checkpoint

    root = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as patch:  # the tiny checkpoint, wider (see the module docstring)
        patch.setattr(tiny_checkpoint, "QWEN_CONF", tiny_checkpoint.QWEN_CONF | {
            "hidden_size": HIDDEN, "head_dim": HIDDEN // 4, "intermediate_size": 2 * HIDDEN})  # fmt: skip
        patch.setattr(tiny_checkpoint, "ADAPTOR_CONF", tiny_checkpoint.ADAPTOR_CONF | {"llm_dim": HIDDEN})
        model = tiny_checkpoint.build(root / "model").official_dir
    examples = []
    for i, ((_, zh, en), clip) in enumerate(zip(PHRASES, phrases_file(root / "phrases.wav"), strict=True)):
        wav = root / f"phrase{i}.wav"
        sf.write(wav, clip, 16000)
        examples.append((wav, zh, en))
    # transcribe rows in funasr's ChatML JSONL, translate rows in the seed's JSON: both readers on the way
    tokenizer = FunAsrNano.load(model).tokenizer
    write_chatml(
        [Example(str(w), user_prompt(TaskMode.TRANSCRIBE), zh, "transcribe") for w, zh, _ in examples],
        root / "transcribe.jsonl", lambda t: len(tokenizer.encode(t)), lambda a: speech_length(sf.info(a).frames),
    )  # fmt: skip
    seed_rows = [{"instruction": TRANSLATE_TO_ENGLISH_PROMPT, "input": w.name, "output": en} for w, _, en in examples]
    (root / "translate.json").write_text(json.dumps(seed_rows, ensure_ascii=False), encoding="utf-8")
    base = ["--model", str(model), "--cache", str(root / "features"), *COMMON]
    data = ["--data", str(root / "transcribe.jsonl")]
    assert cli.main(["train", *data, "--val-fraction", "0", "--out", str(root / "stage1"), *base, *STAGE1]) == 0
    both = ["--data", str(root / "transcribe.jsonl"), str(root / "translate.json")]
    stage2 = ["train", *both, "--val", *both[1:], "--out", str(root / "stage2"), *base, *STAGE2,
              "--base-adapter", str(root / "stage1" / "adapter")]  # fmt: skip
    assert cli.main(stage2) == 0
    return {"root": root, "model": model, "examples": examples, "stage2_argv": stage2}


def base_model(run) -> FunAsrNano:
    """The 'released' model: the tiny checkpoint with the stage 1 transcription fine-tune fused in."""
    asr = FunAsrNano.load(run["model"], dtype=mx.float32, backend="mlx")
    apply_adapter(asr.model.llm, run["root"] / "stage1" / "adapter")
    return asr


def greedy(asr: FunAsrNano, wav, task: TaskMode, adapter_on: bool) -> str:
    prompt = asr.prompt_embeddings(asr.audio_rows(asr.features(sf.read(wav, dtype="float32")[0])), user_prompt(task))
    with adapter_rows(adapter_on):
        out = generate(asr.model.llm, prompt, GenerationConfig(max_tokens=12), asr.model.args.eos_token_ids,
                       backend="mlx")  # fmt: skip
    return asr.decode(out.tokens)


def metrics(run, stage: str) -> list[dict]:
    lines = (run["root"] / stage / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_loss_falls_and_validation_reaches_the_targets(run):
    for stage in ("stage1", "stage2"):
        steps = [r for r in metrics(run, stage) if "loss" in r]
        first, last = np.mean([r["loss"] for r in steps[:5]]), np.mean([r["loss"] for r in steps[-5:]])
        assert last < first / 10, (stage, first, last)
    val = [r for r in metrics(run, "stage2") if "val_loss" in r]
    assert [r["step"] for r in val] == [0, 30, 60, 90]
    assert val[-1]["val_loss"] < val[0]["val_loss"] / 10
    assert val[0]["bleu"] < 50 and val[-1]["bleu"] == pytest.approx(100.0)
    assert val[-1]["cer"] == 0.0
    assert (run["root"] / "stage2" / "curves.png").stat().st_size > 10_000


def test_adapter_on_translates_and_off_transcribes(run):
    asr = base_model(run)
    before = [greedy(asr, w, TaskMode.TRANSLATE_TO_EN, True) for w, _, _ in run["examples"]]
    assert before != [en for _, _, en in run["examples"]]  # the base does not translate by itself
    adapter = load_adapter(asr.model.llm, run["root"] / "stage2" / "adapter")
    assert adapter.task == "translate"
    for wav, zh, en in run["examples"]:
        assert greedy(asr, wav, TaskMode.TRANSLATE_TO_EN, adapter_on=True) == en
        assert greedy(asr, wav, TaskMode.TRANSCRIBE, adapter_on=False) == zh


def last_logits(asr: FunAsrNano, wav) -> mx.array:
    prompt = asr.prompt_embeddings(
        asr.audio_rows(asr.features(sf.read(wav, dtype="float32")[0])), TRANSLATE_TO_ENGLISH_PROMPT
    )
    return prefill(asr.model.llm, prompt[None], make_cache(asr.model.llm, prompt.shape[0] + 1))[0]


def test_fused_equals_unfused(run):
    unfused, fused = base_model(run), base_model(run)
    load_adapter(unfused.model.llm, run["root"] / "stage2" / "adapter")
    apply_adapter(fused.model.llm, run["root"] / "stage2" / "adapter")
    for wav, _, en in run["examples"]:
        want, got = last_logits(unfused, wav), last_logits(fused, wav)
        assert float(mx.abs(got - want).max()) / float(mx.abs(want).max()) < 1e-4
        assert greedy(fused, wav, TaskMode.TRANSLATE_TO_EN, True) == en


def test_resume_and_save_load_are_exact(run, tmp_path):
    """A trainer started from the step-80 checkpoint (new model, optimizer, sampler) trains steps 81-90 to the
    same adapter and optimizer moments, bit for bit, as the uninterrupted run; the saved adapter, loaded into a
    fresh model, is that adapter and gives the trainer's logits exactly."""
    opts = cli.parse_args(run["stage2_argv"])
    asr = base_model(run)
    rows = [e for path in opts.data for e in read_rows(path)]
    val = [e for path in opts.val for e in read_rows(path)]
    trainer = Trainer(asr, FeatureCache(asr, opts.cache), rows, val, cli.train_config(opts), tmp_path)
    trainer.resume(run["root"] / "stage2" / "checkpoints" / f"step-{RESUME_AT:07d}")
    assert trainer.step == RESUME_AT
    trainer.fit()
    final = run["root"] / "stage2" / "checkpoints" / f"step-{STEPS:07d}"
    saved = mx.load(str(final / "adapters.safetensors"))
    resumed = adapter_weights(trainer.llm)
    assert saved.keys() == resumed.keys()
    assert all(np.array_equal(np.asarray(saved[k]), np.asarray(resumed[k])) for k in saved)
    moments = mx.load(str(final / "optimizer.safetensors"))
    ours = mx.load(str(trainer.save_checkpoint() / "optimizer.safetensors"))
    assert all(np.array_equal(np.asarray(moments[k]), np.asarray(ours[k])) for k in moments)
    assert json.loads((final / "trainer_state.json").read_text())["sampler"] == trainer.sampler.state()

    loaded = base_model(run)
    load_adapter(loaded.model.llm, run["root"] / "stage2" / "adapter")
    wav = run["examples"][0][0]
    trainer.llm.eval()
    assert np.array_equal(np.asarray(last_logits(loaded, wav)), np.asarray(last_logits(trainer.asr, wav)))


@pytest.mark.integration
def test_unified_graph_prints_the_trained_english_and_chinese(run, tmp_path):
    released = tmp_path / "released"  # the base with the stage 1 fine-tune folded in, as a standalone checkpoint
    convert.convert(run["model"], released, "fp32", None, run["root"] / "stage1" / "adapter")
    records, log = dora_run(
        "file_funasr_unified.yml", tmp_path, DFN_SOURCE_REALTIME="false",
        DFN_SOURCE_FILE=str(run["root"] / "phrases.wav"), DFN_FUNASR_MODEL=str(released),
        DFN_FUNASR_ADAPTER=str(run["root"] / "stage2" / "adapter"),
        DFN_FUNASR_MAX_TOKENS="12", DFN_FUNASR_BACKEND="mlx", DFN_FUNASR_DTYPE="fp32",
    )  # fmt: skip
    english = [r["text"] for _, r in sorted(finals(records).items())]
    transcripts = sorted((r for r in records if r["kind"] == "transcript"), key=lambda r: r["segment_id"])
    chinese = [r["text"] for r in transcripts]
    assert english == [en for _, _, en in PHRASES], log[-3000:]
    assert chinese == [zh for _, zh, _ in PHRASES]
    assert "[en] Hello." in log and "[zh transcript] 你好" in log
