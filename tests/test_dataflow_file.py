"""The real file graph under `dora run`, on real Mandarin speech and on bad input."""

import json
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr
from dfn_testing import DATAFLOWS, read16k, speech_with_gaps, zh_clip
from dora_graphs import dora_run, finals, node_env

pytestmark = pytest.mark.integration
GRAPH = "file_whisper_translate.yml"


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_bundled_sample_becomes_english_text_and_speech(tmp_path, bundled_sample):
    records, _ = dora_run(GRAPH, tmp_path, DFN_SOURCE_REALTIME="false", DFN_TTS_WAV_DIR=str(tmp_path / "speech"))
    results = finals(records)
    assert len(results) == 2, records
    hello, counting = (results[k] for k in sorted(results))
    assert hello["kind"] == counting["kind"] == "text"
    assert "hello" in hello["text"].lower()
    assert digits(counting["text"]).startswith("12345678")
    for rec in (hello, counting):
        assert rec["language"] == "en" and rec["latency_s"] > 0 and rec["start_s"] < rec["end_s"]
    wavs = sorted((tmp_path / "speech").glob("*.wav"))
    assert len(wavs) == 2 and all(sf.info(w).duration > 0.4 for w in wavs)


def test_realtime_replay_reports_latency(tmp_path, bundled_sample):
    records, _ = dora_run(GRAPH, tmp_path, DFN_SOURCE_REALTIME="true")
    results = finals(records)
    assert len(results) == 2
    # live pacing: the result comes after its speech ended, within a few seconds on 2 cores
    assert all(0 < r["latency_s"] < 30 for r in results.values())
    summary = (tmp_path / "probe.summary.json").read_text()
    assert '"segments": 2' in summary


def test_unreadable_file_is_reported_and_the_graph_ends(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    records, _ = dora_run(GRAPH, tmp_path, DFN_SOURCE_REALTIME="false", DFN_SOURCE_FILE=str(bad))
    (rec,) = records
    assert rec["kind"] == "error" and rec["code"] == "AudioUnreadable" and rec["input"] == "source_error"


def test_stereo_44k_pcm_with_nan_burst_and_a_minute_of_silence(tmp_path):
    speech = speech_with_gaps(["nihao_shijie"])
    silence = np.zeros(60 * 16000, np.float32)
    silence[5 * 16000 : 5 * 16000 + 800] = np.nan  # a corrupt stretch in the quiet part
    audio = np.concatenate([speech, silence, read16k(zh_clip("jishu")), np.zeros(8000, np.float32)])
    stereo = np.stack([soxr.resample(np.nan_to_num(audio), 16000, 44100)] * 2, axis=1)
    i = int(30 * 44100)
    stereo[i : i + 2000] = np.nan
    path = tmp_path / "long.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    records, _ = dora_run(GRAPH, tmp_path, DFN_SOURCE_REALTIME="false", DFN_SOURCE_FILE=str(path))
    results = finals(records)
    texts = [results[k] for k in sorted(results)]
    assert [r["kind"] for r in texts] == ["text", "text"], records
    assert "hello" in texts[0]["text"].lower() and digits(texts[1]["text"]).startswith("1234")


def test_ten_minute_file(tmp_path):
    # ten minutes, speech at both ends: the VAD streams through it, nothing accumulates, both ends come out
    audio = np.concatenate(
        [
            speech_with_gaps(["nihao_shijie"]),
            np.zeros(600 * 16000, np.float32),
            read16k(zh_clip("jishu")),
        ]
    )
    path = tmp_path / "ten_minutes.flac"
    sf.write(path, audio, 16000)
    records, _ = dora_run(GRAPH, tmp_path, DFN_SOURCE_REALTIME="false", DFN_SOURCE_FILE=str(path))
    results = finals(records)
    assert len(results) == 2 and all(r["kind"] == "text" for r in results.values())
    last = results[max(results)]
    assert last["start_s"] > 600 and digits(last["text"]).startswith("1234")


def test_same_graph_under_dora_up_and_start(tmp_path):
    env = node_env()
    probe = tmp_path / "probe.jsonl"
    subprocess.run(["dora", "up"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    try:
        proc = subprocess.run(
            ["dora", "start", str(DATAFLOWS / GRAPH), "--attach", "--env", "DFN_SOURCE_REALTIME=false", "--env",
             f"DFN_PROBE_OUTPUT={probe}"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        subprocess.run(["dora", "destroy"], env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = finals([json.loads(x) for x in probe.read_text().splitlines()])
    assert len(results) == 2 and "hello" in results[min(results)]["text"].lower()
