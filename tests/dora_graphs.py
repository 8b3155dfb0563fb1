"""Running the project's real dataflows under `dora run` from tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from accounting import account
from dfn_testing import DATAFLOWS


def node_env(**overrides: str) -> dict[str, str]:
    """The environment of a `dora run`: this interpreter's scripts (dfn-*, dora) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(overrides)
    return env


def dora_run(
    graph: str, workdir: Path, timeout: float = 240, allow_losses: bool = False, **env: str
) -> tuple[list[dict], str]:
    """Run dataflows/<graph> and return the probe's JSONL records and dora's output, after checking the graphs'
    invariant on them (tests/accounting.py: one final or one error per segment, no hole, no reported loss)."""
    probe = workdir / "probe.jsonl"
    proc = subprocess.run(
        ["dora", "run", str(DATAFLOWS / graph)],
        env=node_env(DFN_PROBE_OUTPUT=str(probe), **env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert probe.exists(), log[-4000:]
    records = [json.loads(line) for line in probe.read_text().splitlines()]
    account(records, allow_losses=allow_losses)
    return records, log


def finals(records: list[dict]) -> dict[tuple, dict]:
    """One entry per (session, segment); fails if a segment got two finals."""
    return {key: recs[0] for key, recs in account(records, allow_losses=True).finals.items()}
