"""The API key never leaves the Authorization header: the remote and fallback graphs run for real under `dora run`
against a fake OpenAI-compatible server (tests/fake_llm.py) that fails in every way we know (401 echoing the key,
429, 500 echoing it, timeouts, dropped connections, garbage and truncated streams, an error chunk and a reply that
echo it), and every output is searched for the key and for any 8-character piece of it: dora's own log files
(the dataflow's out/ folder), the nodes' stdout/stderr, the probe's JSONL and summary, the WAVs, error messages and
metadata (all of which the probe records)."""

import json
import secrets
import string
from pathlib import Path

import pytest
from dfn_testing import DATAFLOWS
from dora_graphs import dora_run, finals

pytestmark = pytest.mark.integration

PIECE = 8  # the shortest piece of the key searched for; shorter ones would match by chance


def recognisable_key() -> str:
    alphabet = string.ascii_letters + string.digits  # 62^8 possible pieces: no chance match in the logs
    return "sk-dfn-" + "".join(secrets.choice(alphabet) for _ in range(40))


def add_echo_modes(server) -> None:
    """Modes of a hostile server that sends the key back where a careless client would pass it on."""
    handler = server.server.RequestHandlerClass

    def got(self) -> str:
        return self.headers.get("Authorization", "")

    def mode_echo500(self):  # an error page that shows the request's headers
        self.send_status(500, f"upstream error; request had Authorization: {got(self)}")

    def mode_echo_masked400(self):  # OpenAI style: the key masked to its ends
        key = got(self).removeprefix("Bearer ")
        self.send_status(400, json.dumps({"error": {"message": f"Incorrect API key {key[:12]}***{key[-3:]}"}}))

    def mode_echo_error_chunk(self):
        self.start_sse()
        self.send(b'data: {"error": {"message": "bad key ' + got(self).encode() + b'"}}\n\n')

    def mode_echo_reply(self):  # a "translation" that is the header itself
        from fake_llm import delta, sse

        self.start_sse()
        self.send(sse(delta(f"You sent {got(self)}.")) + sse(delta(finish="stop")) + sse("[DONE]"))

    for name, fn in list(locals().items()):
        if name.startswith("mode_"):
            setattr(handler, name, fn)


def leaks(key: str, root: Path, *texts: str) -> list[str]:
    """Where the key, or any PIECE characters of it, appears: in `texts` or in any file under `root`."""
    pieces = {key[i : i + PIECE].encode() for i in range(len(key) - PIECE + 1)}
    sources = [(f"text {i}", t.encode()) for i, t in enumerate(texts)]
    sources += [(str(p.relative_to(root)), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]
    return [name for name, data in sources if any(piece in data for piece in pieces)]


# (graph, the fake server's script, what the two segments of the bundled sample must end as)
RUNS = [
    ("file_whisper_remote.yml", ("401", "429", "500"), {"TranslationFailed"}),
    ("file_whisper_remote.yml", ("echo500", "slow", "echo_masked400"), {"TranslationFailed"}),
    ("file_whisper_remote.yml", ("drop", "malformed", "echo_error_chunk"), {"TranslationFailed"}),
    ("file_whisper_remote.yml", ("truncated", "echo_reply"), {"TranslationFailed", "text"}),
    ("file_whisper_fallback.yml", ("echo_reply", "drop", "ok"), {"text"}),
]


@pytest.mark.parametrize("graph, script, outcomes", RUNS, ids=[f"{g}:{'+'.join(s)}" for g, s, _ in RUNS])
def test_the_api_key_appears_in_no_output(tmp_path, llm, graph, script, outcomes):
    key, session = recognisable_key(), f"secrets-{secrets.token_hex(6)}"
    server = llm(*script)
    add_echo_modes(server)
    records, log = dora_run(
        graph, tmp_path, DFN_SOURCE_REALTIME="false", DFN_LLM_BASE_URL=server.url, OPENAI_API_KEY=key,
        DFN_LLM_MAX_RETRIES="1", DFN_LLM_RETRY_BACKOFF_S="0.01", DFN_LLM_READ_TIMEOUT_S="0.3",
        DFN_LLM_BREAKER_FAILURES="10", DFN_TRANSLATE_MODEL=str(tmp_path / "no-model"),
        DFN_TTS_WAV_DIR=str(tmp_path / "speech"), DFN_SOURCE_SESSION_ID=session,
    )  # fmt: skip
    # the key was really in use, and every failure path of the script was taken
    assert server.requests and all(h.get("Authorization") == f"Bearer {key}" for h, _ in server.requests)
    assert len(server.requests) >= len(script), (len(server.requests), log[-3000:])
    results = finals(records)
    assert len(results) == 2, log[-3000:]
    assert {r["code"] if r["kind"] == "error" else "text" for r in results.values()} == outcomes, results
    # dora writes each run's node logs to out/<dataflow id>/ next to the graph
    ours = [p for p in (DATAFLOWS / "out").glob("*/log_probe.*") if session in p.read_text(errors="replace")]
    assert len(ours) == 1, "dora's log files of this run were not found"
    assert {p.name.split(".")[0] for p in ours[0].parent.iterdir()} >= {
        "log_translate" if "remote" in graph else "log_fallback",
        "log_asr",
    }
    assert leaks(key, tmp_path, log) == []  # probe JSONL + summary, WAVs; dora's and the nodes' output
    assert leaks(key, DATAFLOWS / "out") == []  # every run's dora logs


def test_the_search_finds_a_piece_of_the_key(tmp_path):
    key = recognisable_key()
    (tmp_path / "log.txt").write_text(f"header was {key[20 : 20 + PIECE]}...")
    assert leaks(key, tmp_path) == ["log.txt"] and leaks(key, tmp_path, key[:PIECE]) == ["text 0", "log.txt"]
    assert leaks(key, tmp_path, key[: PIECE - 1]) == ["log.txt"]


def test_a_key_no_header_can_carry_is_refused_without_showing_it():
    from dora_funasr_nano.model_core.translation.remote import RemoteTranslator

    key = recognisable_key()
    with pytest.raises(ValueError) as info:
        RemoteTranslator(api_key_env="K", env={"K": key[:20] + "\x00" + key[20:]})
    assert leaks(key, Path("/nonexistent"), str(info.value), repr(info.value)) == []
    with RemoteTranslator(api_key_env="K", env={"K": f" {key}\n"}) as translator:  # pasted with a newline
        assert translator._key == key and key[:PIECE] not in repr(translator)
