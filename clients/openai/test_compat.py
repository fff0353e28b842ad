"""Compatibility with OpenAI's own Python SDK (`openai`, pinned in requirements.txt) pointed at
Threadline with a personal API key: the model list, a completion answered whole and streamed with
its usage, an unknown model as `NotFoundError`, and a spent plan as `RateLimitError` — with the
calls in the caller's ledger.

Starts `THREADLINE_BIN` (default ../../target/debug/threadline) and its mock upstream on free
loopback ports, on a fresh data dir or the database of COMPAT_DATABASE_URL. Run with
`python -m unittest test_compat.py` (the tests run in the order they are written).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import openai

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("THREADLINE_BIN", str(HERE.parent.parent / "target/debug/threadline"))
# Five credits a day for registered accounts; gpt-4o-mini (the mock upstream) costs one.
CREDITS = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, any_answer=False):
    for _ in range(200):
        try:
            with urllib.request.urlopen(url):
                return
        except urllib.error.HTTPError:
            if any_answer:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def call(method, url, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


class Server:
    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="threadline-openai-")
        port, mock_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{port}"
        mock_root = f"http://127.0.0.1:{mock_port}"
        self.mock = subprocess.Popen([BIN, "mock-upstream", "--bind", f"127.0.0.1:{mock_port}"])
        wait_ready(f"{mock_root}/v1/models", any_answer=True)
        plans = Path(self.data_dir) / "compat-plans.yaml"
        plans.write_text(f"tiers:\n  free:\n    credits: {{limit: {CREDITS}, window: day}}\n")
        env = {
            k: v
            for k, v in os.environ.items()
            if not (k.endswith("_API_KEY") or k.endswith("_BASE_URL") or k == "DATABASE_URL")
            and not (k.startswith("THREADLINE_") and k.endswith("_MODEL"))
        }
        env.update(
            THREADLINE_BIND=f"127.0.0.1:{port}",
            THREADLINE_DATA_DIR=self.data_dir,
            THREADLINE_PLANS_FILE=str(plans),
            THREADLINE_DEFAULT_MODEL="echo",
            RUST_LOG="warn",
            OPENAI_API_KEY="mock-key",
            OPENAI_BASE_URL=f"{mock_root}/v1",
        )
        if os.environ.get("COMPAT_DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["COMPAT_DATABASE_URL"]
        self.server = subprocess.Popen([BIN, "serve"], env=env)
        wait_ready(f"{self.base}/readyz")

    def stop(self):
        for process in (self.server, self.mock):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def ask(text):
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


class OpenAiSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        base = cls.server.base
        status, body = call(
            "POST",
            f"{base}/v1/auth/register",
            body={"email": "py@example.com", "password": "correct horse battery staple"},
        )
        assert status == 201, body
        cls.session = body["token"]
        status, body = call("POST", f"{base}/v1/me/api-keys", cls.session, {"name": "python"})
        assert status == 201, body
        # No retries: a 429 is to reach the test, not to be waited out.
        cls.client = openai.OpenAI(api_key=body["secret"], base_url=f"{base}/v1", max_retries=0)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def used(self):
        _, usage = call("GET", f"{self.server.base}/v1/me/usage", self.session)
        return next(m["used"] for m in usage["meters"] if m["meter"] == "credits")

    def test_1_models_list_reads_the_catalog(self):
        models = {m.id: m for m in self.client.models.list()}
        self.assertIn("echo", models)
        self.assertEqual(models["gpt-4o-mini"].owned_by, "openai")
        self.assertEqual(models["gpt-4o-mini"].object, "model")
        self.assertIsInstance(models["echo"].created, int)

    def test_2_a_completion_answered_whole(self):
        completion = self.client.chat.completions.create(model="echo", messages=ask("hello there"))
        self.assertEqual(completion.object, "chat.completion")
        self.assertEqual(completion.choices[0].message.content, "Echo: hello there")
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        usage = completion.usage
        self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)

    def test_3_a_streamed_completion_ends_with_its_usage(self):
        stream = self.client.chat.completions.create(
            model="gpt-4o-mini",
            messages=ask("Tell me something"),
            max_completion_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage, chunks = "", None, None, 0
        for chunk in stream:
            chunks += 1
            self.assertEqual(chunk.object, "chat.completion.chunk")
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        self.assertGreater(chunks, 2)
        # The mock upstream answers 20 words by default.
        self.assertEqual(len(text.split()), 20, text)
        self.assertEqual(finish, "stop")
        self.assertGreater(usage.completion_tokens, 0)
        self.assertGreater(usage.prompt_tokens, 0)

    def test_4_an_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            self.client.chat.completions.create(model="no-such-model", messages=ask("x"))
        self.assertEqual(caught.exception.status_code, 404)
        self.assertEqual(caught.exception.code, "model_not_found")
        self.assertIn("no-such-model", caught.exception.message)

    def test_5_a_spent_plan_is_a_rate_limit_error_and_the_ledger_has_every_call(self):
        before, spent = self.used(), 0
        with self.assertRaises(openai.RateLimitError) as caught:
            for _ in range(CREDITS + 1):
                self.client.chat.completions.create(model="gpt-4o-mini", messages=ask("hi"))
                spent += 1
        error = caught.exception
        self.assertEqual(error.status_code, 429)
        self.assertEqual(error.type, "insufficient_quota")
        self.assertEqual(error.code, "quota_exceeded")
        self.assertTrue(error.response.headers.get("retry-after"))
        self.assertEqual(before + spent, CREDITS)
        self.assertEqual(self.used(), CREDITS)


if __name__ == "__main__":
    unittest.main()
