"""Quality harness: HSK split rule, scoring with known values, per-level grouping, the translator runner."""

import json
import re
import shutil

import pytest

from dora_funasr_nano.model_core.tools.evaluation.cli import main
from dora_funasr_nano.model_core.tools.evaluation.data import build_hsk_manifest, is_eval_id, read_jsonl, write_jsonl
from dora_funasr_nano.model_core.tools.evaluation.runs import EspeakMandarin, run_translator
from dora_funasr_nano.model_core.tools.evaluation.scoring import format_table, latency_summary, normalize_zh, score

MANIFEST = [
    {"id": "a", "level": 1, "zh": "你好，世界！", "en": "Hello, world!"},
    {"id": "b", "level": 1, "zh": "他是我的老师。", "en": "He is my teacher."},
    {"id": "c", "level": 2, "zh": "我们明天去北京。", "en": "We are going to Beijing tomorrow."},
]


@pytest.fixture(scope="module")
def splits():
    return build_hsk_manifest("eval"), build_hsk_manifest("dev")


def test_bucket_rule_known_ids():
    assert is_eval_id("hsk1-0010") and is_eval_id("hsk1-0011")
    assert not is_eval_id("hsk1-0001") and not is_eval_id("hsk3-0182")


def test_hsk_splits(splits):
    eval_rows, dev_rows = splits
    assert len(eval_rows) == 443 and len(dev_rows) == 3846  # 4,354 - 65 placeholders = 4,289
    assert {r["id"] for r in eval_rows}.isdisjoint(r["id"] for r in dev_rows)
    assert all(is_eval_id(r["id"]) for r in eval_rows) and not any(is_eval_id(r["id"]) for r in dev_rows)
    for r in eval_rows + dev_rows:
        assert r["en"].lower() != "placeholder" and r["level"] in range(1, 7) and r["zh"] and r["pinyin"]
    assert {r["level"] for r in eval_rows} == set(range(1, 7))
    assert build_hsk_manifest("eval") == eval_rows  # deterministic


def test_manifest_command_writes_jsonl(tmp_path, splits):
    main(["hsk-manifest", "--split", "eval", "-o", str(tmp_path / "m.jsonl")])
    assert read_jsonl(tmp_path / "m.jsonl") == splits[0]


def test_perfect_empty_and_missing_translations():
    perfect = score(MANIFEST, [{"id": r["id"], "hyp": r["en"]} for r in MANIFEST])["overall"]
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100) and perfect["missing"] == 0
    empty = score(MANIFEST, [{"id": r["id"], "hyp": ""} for r in MANIFEST])["overall"]
    assert empty["bleu"] == 0 and empty["chrf"] == 0 and empty["empty"] == 3
    half = score(MANIFEST, [{"id": "a", "hyp": "Hello, world!"}, {"id": "zz", "hyp": "x"}])
    assert half["missing_ids"] == ["b", "c"] and half["overall"]["missing"] == 2 and half["extra_hypotheses"] == 1
    # a missing hypothesis scores exactly like an empty one
    as_empty = score(MANIFEST, [{"id": "a", "hyp": "Hello, world!"}, {"id": "b", "hyp": ""}, {"id": "c", "hyp": ""}])
    for metric in ("bleu", "chrf"):
        assert half["overall"][metric] == as_empty["overall"][metric]


def test_cer_known_values_and_normalisation():
    def cer(hyps):
        return score(MANIFEST[:1], [{"id": "a", "hyp": hyps}], task="transcribe")["overall"]

    assert cer("你好，世界！")["cer"] == 0
    assert cer("  你 好 世 界 . ")["cer"] == 0  # spaces and punctuation (any script) do not count
    assert cer("")["cer"] == 1
    assert cer("你好世")["cer"] == pytest.approx(0.25) and cer("你好世")["deletions"] == 1
    assert cer("你好世界啊")["insertions"] == 1 and cer("你好世界啊")["ref_chars"] == 4
    assert normalize_zh("Ｈｅｌｌｏ，World！ 1２3") == "helloworld123"  # NFKC folds full-width forms


def test_duplicate_hypotheses_are_an_error():
    with pytest.raises(ValueError, match="two hypotheses"):
        score(MANIFEST, [{"id": "a", "hyp": "x"}, {"id": "a", "hyp": "y"}])


def test_grouping_by_level():
    hyps = [{"id": "a", "hyp": "Hello, world!"}, {"id": "b", "hyp": "He is my teacher."}, {"id": "c", "hyp": ""}]
    result = score(MANIFEST, hyps, by="level")
    assert list(result["groups"]) == ["1", "2"]
    assert result["groups"]["1"]["n"] == 2 and result["groups"]["1"]["bleu"] == pytest.approx(100)
    assert result["groups"]["2"]["n"] == 1 and result["groups"]["2"]["bleu"] == 0
    assert 0 < result["overall"]["bleu"] < 100
    table = format_table(result)
    assert "level" in table and "all" in table


def test_score_command(tmp_path, capsys):
    write_jsonl(MANIFEST, tmp_path / "m.jsonl")
    write_jsonl([{"id": "a", "hyp": "你好世界", "latency_s": 0.5}], tmp_path / "h.jsonl")
    argv = ["score", "--manifest", str(tmp_path / "m.jsonl"), "--hyp", str(tmp_path / "h.jsonl")]
    main(argv + ["--task", "transcribe", "--by", "level", "--json", str(tmp_path / "s.json")])
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["overall"]["missing"] == 2 and saved["overall"]["latency"]["median_s"] == 0.5
    assert "2 ids had no hypothesis" in capsys.readouterr().out


def test_run_translator_plumbing():
    def fake(zh):
        if "北京" in zh:
            raise TimeoutError("server gone")
        return zh[::-1]

    rows = run_translator(MANIFEST, fake, progress=False)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["hyp"] == "！界世，好你" and rows[0]["latency_s"] >= 0 and "error" not in rows[0]
    assert rows[2]["hyp"] == "" and rows[2]["error"] == "TimeoutError: server gone"
    assert score(MANIFEST, rows)["overall"]["errors"] == 1
    summary = latency_summary([0.1, 0.2, 0.3, 0.4])
    assert summary["median_s"] == pytest.approx(0.25) and summary["p95_s"] == pytest.approx(0.385)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_whisper_translates_espeak_mandarin(whisper):
    pytest.importorskip("faster_whisper")
    samples = EspeakMandarin().synthesize("ta1 shi4 wo3 de5 lao3 shi1")  # 他是我的老师。
    assert 0.5 < samples.size / 16000 < 5
    text = whisper.recognize(samples, task="translate", language="zh").text
    assert re.search(r"[A-Za-z]{2,}", text), text
