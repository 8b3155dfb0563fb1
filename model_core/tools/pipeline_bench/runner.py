"""One real `dora run` of a dataflow on a workload's audio, with every node process watched (psutil: RSS and CPU
seconds, sampled) and the probe's JSONL records collected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class GraphSpec:
    """A dataflow and the extra environment of its nodes. `speed_only`: its model has random weights, so its
    quality columns mean nothing. `llm`: the server its llm-fallback talks to during the run (suite.llm_endpoint).
    Spelled on the command line as `path.yml[,speed_only][,KEY=VALUE...][,llm=packaged|trained|fake][,label=NAME]`."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)
    speed_only: bool = False
    label: str = ""
    llm: str = ""

    @classmethod
    def parse(cls, spec: str) -> GraphSpec:
        path, *extras = spec.split(",")
        env = dict(e.split("=", 1) for e in extras if "=" in e)
        label, llm = env.pop("label", ""), env.pop("llm", "")
        speed_only = "speed_only" in extras or llm == "fake"  # the fake server's replies are not translations
        return cls(Path(path), env, speed_only, label or Path(path).stem + ("" if not env else "*"), llm)


@dataclass
class NodeUsage:
    node: str
    pid: int
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since the run started, RSS MB)
    cpu_s: float = 0.0  # user + system, last sample

    @property
    def peak_rss_mb(self) -> float:
        return max((r for _, r in self.rss_mb), default=0.0)


@dataclass
class RunResult:
    graph: str
    mode: str  # "realtime" or "fast"
    records: list[dict[str, Any]]
    nodes: dict[str, NodeUsage]
    wall_s: float
    returncode: int
    log_tail: str
    started_at: float = 0.0  # wall clock when `dora run` started (the RSS series' time 0)


def node_names(dataflow: Path) -> dict[str, str]:
    """Executable name (the node's `path`) -> node id, to tell the node processes apart."""
    nodes = yaml.safe_load(dataflow.read_text())["nodes"]
    return {Path(str(n.get("path", ""))).name: n["id"] for n in nodes if "path" in n}


class Watcher(threading.Thread):
    """Samples RSS and CPU time of every dataflow node under the `dora run` process every `period` seconds, and of
    the `side` processes (pid -> name) that serve the graph from outside it."""

    def __init__(
        self, root_pid: int, names: dict[str, str], period: float = 0.5, side: dict[int, str] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.names, self.period, self.side = root_pid, names, period, side or {}
        self.usage: dict[int, NodeUsage] = {}
        self.stopped = threading.Event()
        self.t0 = time.monotonic()

    def _node_of(self, proc: Any) -> str | None:
        for part in proc.cmdline()[:3]:
            if (name := Path(part).name) in self.names:
                return self.names[name]
        return None

    def sample(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.root_pid).children(recursive=True)
            children += [psutil.Process(pid) for pid in self.side]
        except psutil.Error:
            return
        for proc in children:
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:  # exited, not reaped yet: RSS reads 0
                        continue
                    if proc.pid not in self.usage:
                        node = self.side.get(proc.pid) or self._node_of(proc)
                        if node is None:
                            continue
                        self.usage[proc.pid] = NodeUsage(node, proc.pid)
                    usage, cpu = self.usage[proc.pid], proc.cpu_times()
                    usage.cpu_s = cpu.user + cpu.system
                    rss = proc.memory_info().rss
                    if rss > 0:
                        usage.rss_mb.append((round(time.monotonic() - self.t0, 2), rss / 2**20))
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(self.period)

    def by_node(self) -> dict[str, NodeUsage]:
        """One entry per node id (a restarted node's processes summed: CPU added, RSS series joined)."""
        out: dict[str, NodeUsage] = {}
        for usage in self.usage.values():
            if usage.node in out:
                out[usage.node].cpu_s += usage.cpu_s
                out[usage.node].rss_mb += usage.rss_mb
            else:
                out[usage.node] = NodeUsage(usage.node, usage.pid, list(usage.rss_mb), usage.cpu_s)
        return out


def dora_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def run_graph(
    spec: GraphSpec,
    audio: Path,
    workdir: Path,
    realtime: bool,
    timeout_s: float = 3600,
    extra_env: dict[str, str] | None = None,
    side: dict[int, str] | None = None,
) -> RunResult:
    """`dora run` the graph on `audio` (replayed in real time or as fast as the graph takes it); `side`: processes
    outside the graph to watch with its nodes (pid -> name)."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / "probe.jsonl"
    probe.unlink(missing_ok=True)
    env = {
        "DFN_SOURCE_FILE": str(audio),
        "DFN_SOURCE_REALTIME": str(realtime).lower(),
        "DFN_PROBE_OUTPUT": str(probe),
        "DFN_PROBE_QUIET": "true",
        **spec.env,
        **(extra_env or {}),
    }
    dora = shutil.which("dora", path=dora_env({})["PATH"]) or "dora"
    t0, started_at = time.monotonic(), time.time()
    with open(workdir / "dora.log", "w") as log:
        proc = subprocess.Popen(
            [dora, "run", str(spec.path.resolve())],
            env=dora_env(env),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        watcher = Watcher(proc.pid, node_names(spec.path), side=side)
        watcher.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            returncode = proc.wait(timeout=30)
        watcher.stopped.set()
        watcher.join()
    wall = time.monotonic() - t0
    records = [json.loads(line) for line in probe.read_text(encoding="utf-8").splitlines()] if probe.exists() else []
    tail = (workdir / "dora.log").read_text(errors="replace")[-3000:]
    mode = "realtime" if realtime else "fast"
    return RunResult(spec.label, mode, records, watcher.by_node(), wall, returncode, tail, started_at)
