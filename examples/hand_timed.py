"""A stopwatch check of `dfn-bench`: time one graph from outside, the way a user hears it, and compare.

It plays a workload's WAV into a PulseAudio null sink (`paplay`), runs the microphone version of the graph on the
sink's monitor, and notes on its own clock when each line appears in the probe's file (polled every 10 ms). The
latency of an utterance is that moment for its last final minus (the moment paplay started + the utterance's end in
the WAV). Nothing of dfn-bench and none of the graph's own timestamps is used; the segments are matched to the
utterances by overlap, after shifting the microphone's stream time by the offset of the first segment.

    python examples/hand_timed.py --workload <folder> [--graph dataflows/mic_whisper_translate.yml]
        [--report bench-report/report.json --run whisper_translate]

Needs `pulseaudio pulseaudio-utils` (Linux). Prints the latency median / p95 and, given a dfn-bench report, the
same numbers from it and their difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SINK = "dfn_hand_timed"


def pactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)


def start_pulse() -> str:
    """A null sink to play into (PulseAudio started if it is not running); returns the module id to unload."""
    if not (shutil.which("pulseaudio") and shutil.which("paplay")):
        raise SystemExit("needs PulseAudio: apt-get install pulseaudio pulseaudio-utils")
    if pactl("info").returncode != 0:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True, timeout=20)
        for _ in range(50):
            if pactl("info").returncode == 0:
                break
            time.sleep(0.1)
    module = pactl("load-module", "module-null-sink", f"sink_name={SINK}")
    if module.returncode != 0:
        raise SystemExit(f"cannot create a null sink: {module.stderr.strip()}")
    return module.stdout.strip()


def p95(values: list[float]) -> float:
    """Linear between the closest ranks, as numpy.percentile (dfn-bench) computes it."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def watch(probe: Path, seen: list[tuple[float, dict]], stop: threading.Event) -> None:
    """Our own arrival time of every probe line."""
    done = 0
    while not stop.is_set():
        if probe.exists():
            text, now = probe.read_text(encoding="utf-8"), time.time()
            lines = text.splitlines()
            complete = lines if text.endswith("\n") else lines[:-1]  # a line being written waits
            for line in complete[done:]:
                seen.append((now, json.loads(line)))
            done = len(complete)
        time.sleep(0.01)


def hand_timed(workload: Path, graph: Path, workdir: Path) -> list[float]:
    meta = json.loads((workload / "workload.json").read_text(encoding="utf-8"))
    utterances = meta["utterances"]
    probe = workdir / "probe.jsonl"
    env = dict(os.environ, PULSE_SOURCE=f"{SINK}.monitor", DFN_PROBE_OUTPUT=str(probe), DFN_PROBE_QUIET="true",
               DFN_SOURCE_DURATION_S=str(meta["duration_s"] + 20))  # fmt: skip
    module = start_pulse()
    seen: list[tuple[float, dict]] = []
    stop = threading.Event()
    with open(workdir / "dora.log", "w") as log:
        proc = subprocess.Popen(["dora", "run", str(graph.resolve())], env=env, cwd=workdir, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        recording = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if "recording from" in line:  # the source opens the microphone once the model is ready
                    recording.set()

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=watch, args=(probe, seen, stop), daemon=True).start()
        try:
            if not recording.wait(300):
                raise SystemExit(f"the graph did not start recording; see {workdir / 'dora.log'}")
            time.sleep(1.0)
            t0 = time.time()
            subprocess.run(["paplay", "-d", SINK, str(workload / "audio.wav")], check=True)
            proc.wait(timeout=meta["duration_s"] + 600)
        finally:
            if proc.poll() is None:
                proc.kill()
            stop.set()
            pactl("unload-module", module)
    finals = [(t, r) for t, r in seen if r.get("kind") == "text" and r.get("fin", True) and "end_s" in r]
    if not finals:
        raise SystemExit(f"no English came out; see {workdir / 'dora.log'}")
    # the microphone's stream time -> the WAV's: the first segment starts where the first utterance does
    shift = min(r["start_s"] for _, r in finals) - utterances[0]["start_s"]
    last: dict[str, float] = {}
    for t, r in finals:
        start, end = r["start_s"] - shift, r["end_s"] - shift
        overlap = [(min(end, u["end_s"]) - max(start, u["start_s"]), u["id"]) for u in utterances]
        best, uid = max(overlap)
        if best > 0:
            last[uid] = max(last.get(uid, 0.0), t)
    ends = {u["id"]: u["end_s"] for u in utterances}
    missed = len(utterances) - len(last)
    print(f"{len(finals)} finals for {len(utterances)} utterances ({missed} without one); shift {shift:+.2f} s")
    return [last[uid] - (t0 + ends[uid]) for uid in sorted(last)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", required=True, help="a dfn-bench workload folder (workload.json, audio.wav)")
    parser.add_argument("--graph", default="dataflows/mic_whisper_translate.yml")
    parser.add_argument("--report", help="a dfn-bench report.json to compare with")
    parser.add_argument("--run", default="whisper_translate", help="the report's graph label to compare with")
    parser.add_argument("--out", help="folder for the probe file and the log (default: a temporary one)")
    opts = parser.parse_args()
    workdir = Path(opts.out or tempfile.mkdtemp(prefix="hand-timed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    latencies = hand_timed(Path(opts.workload), Path(opts.graph), workdir)
    median, high = statistics.median(latencies), p95(latencies)
    print(f"hand-timed: end of speech -> final English, median {median:.2f} s, p95 {high:.2f} s "
          f"({len(latencies)} utterances; files in {workdir})")  # fmt: skip
    if opts.report:
        runs = json.loads(Path(opts.report).read_text())["runs"]
        run = next(r for r in runs if r["graph"] == opts.run and r["mode"] == "realtime")
        d = run["latency"]["ttfs_s"]
        print(f"dfn-bench {opts.run}: median {d['median']:.2f} s, p95 {d['p95']:.2f} s; "
              f"difference {median - d['median']:+.2f} / {high - d['p95']:+.2f} s")  # fmt: skip
    (workdir / "hand_timed.json").write_text(json.dumps({"latency_s": latencies, "median": median, "p95": high}))


if __name__ == "__main__":
    main()
