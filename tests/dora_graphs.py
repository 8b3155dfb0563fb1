"""Running the project's real dataflows under `dora run` from tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
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


class DoraRun:
    """A `dora run` in the background, for tests that act on its nodes while it runs (kill one, stop one, ...)."""

    def __init__(self, graph: str, workdir: Path, **env: str) -> None:
        env = {"DFN_PROBE_OUTPUT": str(workdir / "probe.jsonl"), **env}
        self.probe, self.log_path = Path(env["DFN_PROBE_OUTPUT"]), workdir / "dora-run.log"
        path = Path(graph) if Path(graph).is_absolute() else DATAFLOWS / graph
        with open(self.log_path, "w") as log:  # a file, not a pipe: nobody reads a pipe while dora fills it
            self.proc = subprocess.Popen(["dora", "run", str(path)], env=node_env(**env), cwd=workdir, stdout=log,
                                         stderr=subprocess.STDOUT)  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict]:
        try:
            lines = self.probe.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, condition: Callable[[list[dict]], bool], timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if condition(records := self.records()):
                return records
            time.sleep(0.05)
        raise AssertionError(f"condition not met; dora run ended with {self.proc.poll()}")

    def pid_of(self, command: str) -> int:
        """The node process whose command line names `command` (e.g. dfn-funasr), among this run's descendants."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        pids = [p.pid for p in children if any(command in part for part in p.cmdline())]
        assert len(pids) == 1, pids
        return pids[0]

    def end(self, timeout: float = 240) -> str:
        """Wait for a successful end; dora's output."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.returncode == 0, self.log()[-4000:]
        return self.log()

    def finish(self, timeout: float = 240, allow_losses: bool = False) -> tuple[list[dict], str]:
        """Wait for the end; the probe's records and dora's output, checked as `dora_run` checks them."""
        log = self.end(timeout)
        records = self.records()
        account(records, allow_losses=allow_losses)
        return records, log
