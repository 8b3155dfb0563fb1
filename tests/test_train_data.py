"""dfn-train's parts: the two data formats, the task-row builder (a real HTTP teacher), the mix sampler, the
held-out split, the batch layout and loss, the feature cache, the LLM-swap check and the real-shape step command."""

import json
from collections import Counter

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import soundfile as sf
from dfn_testing import read16k, zh_clip
from mlx.utils import tree_flatten

from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.model_core.fun_asr_nano.prompts import TRANSLATE_TO_ENGLISH_PROMPT, TaskMode, user_prompt
from dora_funasr_nano.model_core.tools.evaluation.data import is_eval_id
from dora_funasr_nano.model_core.tools.train import cli
from dora_funasr_nano.model_core.tools.train.batches import loss, make_batch, target_ids
from dora_funasr_nano.model_core.tools.train.data import (
    Example,
    MixSampler,
    build_task_rows,
    drop_eval_examples,
    parse_mix,
    read_manifest,
    read_rows,
    read_training_manifest,
    split_heldout,
    to_chatml,
)
from dora_funasr_nano.model_core.tools.train.features import FeatureCache
from dora_funasr_nano.model_core.tools.train.swap import swap_llm_check
from dora_funasr_nano.model_core.translation.remote import RemoteTranslator

OFFICIAL_ROW = {  # the first row of funasr's data/train_example.jsonl, with a local path
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "语音转写：<|startofspeech|>!audios/IT0011W0002.wav<|endofspeech|>"},
        {"role": "assistant", "content": "几点了？"},
    ],
    "speech_length": 145, "text_length": 3,
}  # fmt: skip


def test_chatml_and_seed_rows_are_read_with_their_kinds(tmp_path):
    translate = to_chatml(Example("b.wav", TRANSLATE_TO_ENGLISH_PROMPT, "Hi.", "translate"), 100, 2)
    other = dict(OFFICIAL_ROW, messages=[OFFICIAL_ROW["messages"][0],
                 {"role": "user", "content": "说话人是男是女？<|startofspeech|>!/abs/c.wav<|endofspeech|>"},
                 {"role": "assistant", "content": "男"}])  # fmt: skip
    lines = [json.dumps(r, ensure_ascii=False) for r in (OFFICIAL_ROW, translate, other)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines))
    rows = read_rows(tmp_path / "rows.jsonl")
    assert [(r.kind, r.prompt, r.target) for r in rows] == [
        ("transcribe", "语音转写：", "几点了？"), ("translate", TRANSLATE_TO_ENGLISH_PROMPT, "Hi."),
        ("instruction", "说话人是男是女？", "男"),
    ]  # fmt: skip
    assert rows[0].audio == str(tmp_path / "audios" / "IT0011W0002.wav") and rows[2].audio == "/abs/c.wav"
    seed = [{"instruction": "语音转写成中文：", "input": "a.wav", "output": "你好"}]
    (tmp_path / "seed.json").write_text(json.dumps(seed, ensure_ascii=False))
    want = Example(str(tmp_path / "a.wav"), "语音转写成中文：", "你好", "transcribe")
    assert read_rows(tmp_path / "seed.json") == [want]


@pytest.mark.parametrize(
    "user, why",
    [("语音转写：<|startofspeech|>!https://example.org/a.wav<|endofspeech|>", "local files only"),
     ("语音转写：no audio", "the user turn must be")],
)  # fmt: skip
def test_bad_rows_are_refused_with_their_line(tmp_path, user, why):
    row = dict(OFFICIAL_ROW, messages=[OFFICIAL_ROW["messages"][0], {"role": "user", "content": user},
                                      OFFICIAL_ROW["messages"][2]])  # fmt: skip
    (tmp_path / "rows.jsonl").write_text(json.dumps(OFFICIAL_ROW) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=f"row 2: .*{why}"):
        read_rows(tmp_path / "rows.jsonl")


def test_builder_makes_both_task_rows_from_a_teacher_server(llm, tmp_path):
    server = llm("ok", "400", "ok")  # the second transcript's translation is refused
    (tmp_path / "asr.jsonl").write_text(
        "".join(json.dumps({"audio": f"{n}.wav", "text": t}, ensure_ascii=False) + "\n" for n, t in
                (("a", "你好"), ("b", "谢谢"), ("c", "再见")))
    )  # fmt: skip
    with RemoteTranslator(server.url, max_retries=0, env={}) as teacher:
        report = build_task_rows(read_manifest(tmp_path / "asr.jsonl"), teacher)
    transcribe = user_prompt(TaskMode.TRANSCRIBE)
    assert [(e.kind, e.prompt, e.target) for e in report.examples] == [
        ("transcribe", transcribe, "你好"), ("translate", TRANSLATE_TO_ENGLISH_PROMPT, "Hello, world."),
        ("transcribe", transcribe, "谢谢"),
        ("transcribe", transcribe, "再见"), ("translate", TRANSLATE_TO_ENGLISH_PROMPT, "Hello, world."),
    ]  # fmt: skip
    assert [a for a, _ in report.failed] == [str(tmp_path / "b.wav")]
    sent = [body["messages"][-1]["content"] for _, body in server.requests]
    assert all(any(zh in s for s in sent) for zh in ("你好", "谢谢", "再见"))


def hsk_ids(evaluation: bool, n: int) -> list[str]:
    """The first n HSK-style ids (hsk1-0001 ...) of the evaluation bucket, or of the dev pool."""
    ids = (f"hsk{level}-{i:04d}" for level in range(1, 7) for i in range(1, 1000))
    return [sid for sid in ids if is_eval_id(sid) == evaluation][:n]


def test_hsk_evaluation_sentences_never_become_training_rows(tmp_path):
    """An HSK id in the evaluation bucket, as the row's id or key or as its audio file's name (the package names its
    clips by id, _slow for the slow voice), drops the row; dev ids and other corpora's ids are kept, even those
    whose hash falls in the bucket (the rule is HSK's)."""
    held, dev = hsk_ids(True, 3), hsk_ids(False, 2)
    other = next(f"BAC009S0002W{i:04d}" for i in range(100) if is_eval_id(f"BAC009S0002W{i:04d}"))
    rows = [{"id": held[0], "audio": "a.wav", "text": "一"}, {"key": held[1], "audio": "b.wav", "text": "二"},
            {"audio": f"audio/{held[2]}_slow.mp3", "zh": "三"}, {"id": dev[0], "audio": "d.wav", "text": "四"},
            {"audio": f"audio/{dev[1]}.mp3", "text": "五"},
            {"id": other, "audio": f"{other}.wav", "text": "六"}]  # fmt: skip
    (tmp_path / "asr.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    kept, dropped = read_training_manifest(tmp_path / "asr.jsonl")
    assert [t for _, t in kept] == ["四", "五", "六"] and dropped == held
    assert len(read_manifest(tmp_path / "asr.jsonl")) == 6  # evaluation commands (swap-llm-check) read them all
    examples = [Example(f"clips/{sid}.wav", "语音转写：", "t", "transcribe") for sid in (held[0], dev[0], other)]
    assert drop_eval_examples(examples) == (examples[1:], 1)


def test_build_data_drops_and_counts_the_evaluation_sentences(llm, tiny, tmp_path, capsys):
    """dfn-train build-data end to end (a teacher server, the tiny model's tokenizer): no row of the written
    ChatML, manifest or instruction row, is on an HSK evaluation sentence, and the command says how many it left out."""
    held, dev = hsk_ids(True, 2), hsk_ids(False, 1)
    audio = {}
    for sid in held + dev:
        audio[sid] = tmp_path / f"{sid}.wav"
        sf.write(audio[sid], read16k(zh_clip("nihao_shijie")), 16000)
    manifest = [{"id": sid, "audio": str(audio[sid]), "text": "你好世界"} for sid in held + dev]
    (tmp_path / "asr.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in manifest))
    seed = [{"instruction": "说话人是男是女？", "input": str(audio[sid]), "output": "女"} for sid in (held[0], dev[0])]
    (tmp_path / "seed.json").write_text(json.dumps(seed, ensure_ascii=False))
    server = llm("ok")
    out = tmp_path / "rows.jsonl"
    argv = ["build-data", "--manifest", str(tmp_path / "asr.jsonl"), "--out", str(out), "--model",
            str(tiny.official_dir), "--teacher", server.url, "--instructions", str(tmp_path / "seed.json")]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["hsk_eval_dropped"] == 3 and "dropped 3 HSK evaluation sentence(s)" in captured.err
    assert summary["kinds"] == {"transcribe": 1, "translate": 1, "instruction": 1} and summary["rows"] == 3
    rows = read_rows(out)
    assert {r.audio for r in rows} == {str(audio[dev[0]])} and len(server.requests) == 1


def test_the_sampler_mixes_at_the_ratios_and_resumes_exactly():
    rows = [Example(f"{i}.wav", "p", "t", kind) for i, kind in enumerate(["transcribe"] * 7 + ["translate"] * 5
                                                                          + ["instruction"] * 3)]  # fmt: skip
    sampler = MixSampler(rows, parse_mix("60/30/10"), seed=3)
    counts = Counter(rows[i].kind for i in sampler.take(6000))
    assert abs(counts["transcribe"] / 6000 - 0.6) < 0.03 and abs(counts["instruction"] / 6000 - 0.1) < 0.02
    state = json.loads(json.dumps(sampler.state()))  # it survives JSON
    want = sampler.take(50)
    again = MixSampler(rows, parse_mix("60/30/10"), seed=3)
    again.restore(state)
    assert again.take(50) == want
    # every row of a kind comes once before any comes twice
    fresh = MixSampler(rows[:7], {"transcribe": 1.0}, seed=0)
    assert sorted(fresh.take(7)) == list(range(7))
    with pytest.raises(ValueError):
        MixSampler(rows[:7], {"translate": 1.0})


def test_heldout_split_keeps_each_audio_on_one_side():
    rows = [Example(f"{i % 20}.wav", p, "t", k) for i in range(40) for p, k in (("a", "transcribe"),)]
    train, val = split_heldout(rows, 0.1, seed=1)
    assert len({e.audio for e in val}) == 2 and not {e.audio for e in val} & {e.audio for e in train}


@pytest.fixture(scope="module")
def asr(tiny):
    return FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend="mlx")


def clips(tmp_path):
    out = []
    for name in ("jishu", "nihao_shijie"):
        path = tmp_path / f"{name}.wav"
        sf.write(path, read16k(zh_clip(name)), 16000)
        out.append(path)
    return out


def test_batch_loss_is_the_masked_full_logits_loss(asr, tmp_path):
    cache = FeatureCache(asr, tmp_path / "features")
    a, b = clips(tmp_path)
    rows = [Example(str(a), TRANSLATE_TO_ENGLISH_PROMPT, "Technology changes life.", "translate"),
            Example(str(b), user_prompt(TaskMode.TRANSCRIBE), "你好", "transcribe")]  # fmt: skip
    batch = make_batch(asr, cache, rows)
    value, tokens = loss(asr.model.llm, *batch.arrays())
    # the same thing the long way: each row alone, unpadded, full logits, the target positions picked by hand
    total, count = 0.0, 0
    for e in rows:
        prompt = asr.prompt_embeddings(asr.audio_rows(asr.features(read16k(e.audio))), e.prompt)
        ids = target_ids(asr, e.target)
        sequence = mx.concatenate([prompt, asr.model.embed_tokens(mx.array(ids[:-1]))])[None]
        logits = asr.model.llm(mx.zeros((1, sequence.shape[1]), mx.int32), input_embeddings=sequence)[0]
        picked = logits[prompt.shape[0] - 1 :]
        total += float(nn.losses.cross_entropy(picked, mx.array(ids)).sum())
        count += len(ids)
    assert ids[-1] == asr.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert int(tokens.item()) == count == batch.tokens
    assert float(value) == pytest.approx(total / count, rel=1e-5)


def test_feature_cache_is_reused_and_keyed_by_the_model(asr, tiny, tmp_path):
    a, _ = clips(tmp_path)
    first = FeatureCache(asr, tmp_path / "features")
    rows = first.rows(a)
    again = FeatureCache(asr, tmp_path / "features")
    assert np.array_equal(again.rows(a), rows) and again.computed == 0 and first.computed == 1
    np.testing.assert_allclose(rows, np.asarray(asr.audio_rows(asr.features(read16k(a)))), rtol=1e-6)
    other = FunAsrNano.load(tiny.official_dir, dtype=mx.float32, backend="mlx")
    other.model.audio_adaptor.update(
        {"linear1": {"bias": other.model.audio_adaptor.linear1.bias + 1.0}}
    )  # different adaptor weights: a different key
    assert FeatureCache(other, tmp_path / "features").folder != first.folder


def test_swap_llm_check_reports_cer_before_and_after(tiny, tmp_path):
    """Another 'Qwen3' (random, same shapes, Hugging Face layout) decodes after the swap."""
    from mlx_lm.models import qwen3
    from tiny_checkpoint import QWEN_CONF

    other = qwen3.Model(qwen3.ModelArgs.from_dict(QWEN_CONF))
    folder = tmp_path / "other-qwen3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN_CONF))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(other.parameters())))
    a, b = clips(tmp_path)
    manifest = [(str(a), "技术改变生活"), (str(b), "你好世界")]
    report = swap_llm_check(str(tiny.official_dir), str(folder), manifest, max_tokens=6)
    assert set(report) >= {"cer_before", "cer_after", "rows", "verdict"} and report["utterances"] == 2
    assert [r["before"] for r in report["rows"]] != [r["after"] for r in report["rows"]]
    wider = dict(QWEN_CONF, hidden_size=64, head_dim=16)
    (folder / "config.json").write_text(json.dumps(wider))
    mx.save_safetensors(str(folder / "model.safetensors"),
                        dict(tree_flatten(qwen3.Model(qwen3.ModelArgs.from_dict(wider)).parameters())))  # fmt: skip
    with pytest.raises(ValueError, match="hidden_size"):
        swap_llm_check(str(tiny.official_dir), str(folder), manifest, max_tokens=2)


def test_real_shape_step_command_prints_its_numbers(tmp_path, capsys):
    assert cli.main(["real-shape-step", "--tiny", "--repeats", "1", "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["architecture"] == "tiny" and result["target_tokens"] == 32 and result["step_s"] > 0
    assert result["trainable_parameters"] > 0 and result["peak_rss_mb"] > 0
    assert json.loads(capsys.readouterr().out) == result
