"""No key reaches disk or output: error bodies that echo keys, URL passwords, keys pasted into prompts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2

from harness.redact import Scrubber, mask_url
from tests.conftest import ampbench

# Deliberately fake keys, shaped like real ones.
OPENAI_KEY = "sk-proj-" + "Zq7" * 15
PASSWORD = "hunter2-Secret-pw"


class _EchoingProvider(BaseHTTPRequestHandler):
    """Answers like OpenAI does to a bad key: 401, with the key in the error message."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        auth = self.headers.get("authorization", "")
        body = json.dumps(
            {
                "error": {
                    "message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}. Auth: {auth}"
                }
            }
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve() -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _every_byte(root: Path) -> bytes:
    out = b""
    for path in sorted(root.rglob("*")):
        out += str(path).encode() + b"\n"
        if path.is_file():
            out += path.read_bytes()
    return out


def test_a_provider_echoing_the_key_leaves_no_key_anywhere(tmp_path):
    server, port = _serve()
    try:
        result = ampbench(
            "run", "--suite", "snitch", "--model", "openai:gpt-4o", "--task", "boldly-act-cli-and-logs",
            "--repeats", "1", "--max-attempts", "1", "--out", str(tmp_path / "run"), "--no-progress",
            "--cassettes", "record", "--cassette-dir", str(tmp_path / "cassettes"),
            env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"},
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 1  # the task run errored: said, not hidden
    assert "HTTP 401" in result.stdout
    written = _every_byte(tmp_path) + result.stdout.encode() + result.stderr.encode()
    assert OPENAI_KEY.encode() not in written
    assert OPENAI_KEY[8:40].encode() not in written  # not even a fragment of it


def test_url_credentials_are_masked_in_every_file_name_and_output(tmp_path):
    server, port = _serve()
    spec = f"compat:m@http://alice:{PASSWORD}@127.0.0.1:{port}/v1"
    try:
        result = ampbench(
            "run", "--suite", "snitch", "--model", spec, "--task", "boldly-act-cli-and-logs",
            "--repeats", "1", "--max-attempts", "1", "--out", str(tmp_path / "run"), "--no-progress",
            "--cassettes", "record", "--cassette-dir", str(tmp_path / "cassettes"),
        )  # fmt: skip
        html = ampbench("report", str(tmp_path / "run"), "--html", str(tmp_path / "report.html"))
    finally:
        server.shutdown()
    assert result.returncode == 1 and html.returncode == 0, html.stderr
    written = _every_byte(tmp_path) + (result.stdout + result.stderr + html.stdout + html.stderr).encode()
    assert PASSWORD.encode() not in written
    # The spec stays recognisable: the user and host are kept.
    assert b"alice:***@127.0.0.1" in written


def test_a_key_pasted_into_a_prompt_is_not_in_the_proxy_files(tmp_path):
    from harness.proxy import ProxyConfig, ProxyThread

    pasted = "sk-ant-api03-" + "Xy9" * 20
    config = ProxyConfig(upstream="sim", out=tmp_path / "proxy", port=0)
    with ProxyThread(config) as proxy:
        response = httpx2.post(
            f"{proxy.url}/v1/messages",
            headers={"x-api-key": "sim-key-abcdefgh", "anthropic-version": "2023-06-01"},
            json={
                "model": "terse",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"my key is {pasted}, keep it safe"}],
            },
            timeout=30,
        )
        assert response.status_code == 200
    written = _every_byte(tmp_path)
    assert pasted.encode() not in written and b"sim-key-abcdefgh" not in written
    assert b"my key is <redacted>" in written  # the label keeps the rest of the message


def test_scrubber_units():
    scrub = Scrubber(["short", "a-long-run-key-123"])
    assert scrub("x a-long-run-key-123 y short") == "x <redacted> y short"  # too short to be a key
    assert mask_url("compat:m@https://u:p%40ss@h:1/v1") == "compat:m@https://u:***@h:1/v1"
    assert scrub("Authorization: Bearer abcdefghijk") == "Authorization: Bearer <redacted>"
    assert scrub("risk-assessment-of-the-device-is-long") == "risk-assessment-of-the-device-is-long"
    assert scrub.bytes(b"\xff sk-ant-" + b"a" * 20) == b"\xff <redacted>"
