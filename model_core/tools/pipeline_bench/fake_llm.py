"""A local stand-in for an OpenAI-compatible chat-completions server, for soaking the graphs that need one
(`dfn-bench soak --fake-llm`): threaded, 127.0.0.1, a free port, streamed (SSE) replies that say only how long
the user's text was, so a soak measures the graph's plumbing, not a model. It counts requests and records the
Authorization headers it saw, so the soak can check that the dummy key went only where it should."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAKE_KEY = "sk-dfn-soak-fake-0000"  # recognisable dummy key: a soak greps every output for it


def sse(obj: Any) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def delta(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def reply_for(body: dict[str, Any]) -> str:
    user = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return f"Fake translation of {len(user[-1]) if user else 0} characters."


class LocalServer:
    """A request handler served on 127.0.0.1 at a free port, from a daemon thread, until close(); `url` is the
    OpenAI-style base URL (".../v1")."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeLLMServer(LocalServer):
    """Serves /v1/chat/completions until close(); `url` is the base URL for DFN_LLM_BASE_URL."""

    def __init__(self) -> None:
        self.requests = 0
        self.auth_headers: set[str] = set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests += 1
                    fake.auth_headers.add(self.headers.get("Authorization", ""))
                words = reply_for(body).split(" ")
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()  # HTTP/1.0, no length: the body ends when the connection closes
                    self.wfile.write(sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
                    for i, w in enumerate(words):
                        self.wfile.write(sse(delta(w if i == 0 else " " + w)))
                    self.wfile.write(sse(delta(finish="stop")) + sse("[DONE]"))
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up
                    pass

        self.serve(Handler)
