"""The microphone graph against a real PortAudio capture device: a PulseAudio null sink whose monitor is the input.

Known Mandarin audio is played into the sink while the graph records from its monitor. Skipped (with the reason)
where PulseAudio is not installed or cannot start; CI installs it, so there it runs.
"""

import json
import re
import shutil
import subprocess
import threading
import time

import pytest
from dfn_testing import DATAFLOWS
from dora_graphs import finals, node_env

pytestmark = [pytest.mark.integration, pytest.mark.mic]
SINK = "dfn_test_mic"


def _pactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture(scope="module")
def virtual_mic():
    if not (shutil.which("pulseaudio") and shutil.which("pactl") and shutil.which("paplay")):
        pytest.skip("PulseAudio is not installed (apt-get install pulseaudio pulseaudio-utils)")
    started = False
    if _pactl("info").returncode != 0:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True, timeout=20)
        started = True
        for _ in range(50):
            if _pactl("info").returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip("PulseAudio did not start (no audio device can be created here)")
    module = _pactl("load-module", "module-null-sink", f"sink_name={SINK}")
    if module.returncode != 0:
        pytest.skip(f"cannot create a null sink: {module.stderr.strip()}")
    yield SINK
    _pactl("unload-module", module.stdout.strip())
    if started:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=20)


def test_microphone_graph_translates_what_it_hears(tmp_path, virtual_mic, bundled_sample):
    probe = tmp_path / "probe.jsonl"
    env = node_env(DFN_SOURCE_DURATION_S="10", DFN_PROBE_OUTPUT=str(probe), PULSE_SOURCE=f"{virtual_mic}.monitor")
    # PULSE_SOURCE points the default capture device at the sink's monitor without touching system defaults
    proc = subprocess.Popen(
        ["dora", "run", str(DATAFLOWS / "mic_whisper_translate.yml")],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log: list[str] = []
    recording = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            log.append(line)
            if "recording from" in line:  # the source opens the microphone once the model is ready
                recording.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert recording.wait(120), "".join(log)[-3000:]
        time.sleep(0.5)
        subprocess.run(["paplay", "-d", virtual_mic, str(bundled_sample)], check=True, timeout=30)
        assert proc.wait(timeout=120) == 0, "".join(log)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    records = [json.loads(line) for line in probe.read_text().splitlines()]
    texts = [r for r in finals(records).values() if r["kind"] == "text"]
    assert len(texts) == 2, records
    assert "hello" in texts[0]["text"].lower()
    assert re.sub(r"\D", "", texts[1]["text"]).startswith("1234")
    assert all(r["latency_s"] > 0 for r in texts)
