"""A fault-injecting OpenAI-compatible chat-completions server for tests (threaded, 127.0.0.1, ephemeral port).

Replies follow a script of modes: ok, empty, json, truncated, malformed, drop, slow, 500, 429, 400, 401.
"""

import json
import time
from http.server import BaseHTTPRequestHandler

from dora_funasr_nano.model_core.tools.pipeline_bench.fake_llm import LocalServer, delta, sse

CHUNKS = ["Hello", ", ", "world", "."]
SLOW_S = 0.6
__all__ = ["CHUNKS", "SLOW_S", "FakeLLM", "delta", "sse"]


class FakeLLM(LocalServer):
    """OpenAI-compatible /v1/chat/completions whose replies follow a script of modes (the last one repeats)."""

    def __init__(self, *modes: str) -> None:
        self.modes = list(modes)
        self.requests: list[tuple[dict, dict]] = []  # (headers, json body)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((dict(self.headers), body))
                mode = fake.modes.pop(0) if len(fake.modes) > 1 else fake.modes[0]
                try:
                    getattr(self, "mode_" + mode)()
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def start_sse(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0, no length: the body ends when the connection closes

            def send(self, data: bytes):
                self.wfile.write(data)
                self.wfile.flush()

            def mode_ok(self):
                self.start_sse()
                self.send(b": keep-alive\n\n" + sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
                for c in CHUNKS:
                    self.send(sse(delta(c)))
                self.send(sse(delta(finish="stop")) + sse("[DONE]"))

            def mode_empty(self):
                self.start_sse()
                self.send(sse(delta(finish="stop")) + sse("[DONE]"))

            def mode_json(self):  # a server that ignores stream=true
                reply = {"choices": [{"message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}]}
                self.send_status(200, json.dumps(reply), "application/json")

            def mode_truncated(self):
                self.start_sse()
                self.send(sse(delta("Hello")) + sse(delta(", ")))

            def mode_malformed(self):
                self.start_sse()
                self.send(sse(delta("Hello")) + b'data: {"choices": [{"delta": \n\n' + sse("[DONE]"))

            def mode_drop(self):  # a crashing server: the connection closes without a reply
                self.close_connection = True

            def mode_slow(self):
                time.sleep(SLOW_S)
                self.mode_ok()

            def send_status(self, status, text, ctype="text/plain", **headers):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                self.send(text.encode())

            def mode_500(self):
                self.send_status(500, "internal error")

            def mode_429(self):
                self.send_status(429, "slow down", Retry_After="0")

            def mode_400(self):
                self.send_status(400, '{"error": {"message": "bad request"}}', "application/json")

            def mode_401(self):  # like OpenAI, echo the key it got
                got = self.headers.get("Authorization", "")
                self.send_status(401, json.dumps({"error": {"message": f"Incorrect API key provided: {got}"}}))

        self.serve(Handler)
