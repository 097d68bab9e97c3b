"""imports.import_without: serve imports python-socketio without ``requests``, and an
Apprise delivery still imports and uses it; a worker (the zygote's load) imports it
without Redis, and its Socket.IO client still talks to a server.

Each case runs in a fresh interpreter: what it imports must not be in sys.modules before,
and must not leak into the other tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run(code: str, tmp_path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).parents[2]}", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_serve_imports_no_requests_and_an_apprise_delivery_still_works(tmp_path: Path) -> None:
    out = run(
        """
        import sys
        from mediad import imports
        imports.import_without("socketio", "requests")  # as `mediad serve` starts
        import mediad.service, mediad.supervisor, engineio.client
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("requests", "urllib3", "charset_normalizer", "certifi"))
        assert not loaded, loaded
        assert engineio.client.requests is None  # its blocking client, never used
        assert "requests" not in sys.modules  # not hidden any more
        # An Apprise delivery, as the sender makes it (its blocking call, in a thread).
        import http.server, threading
        got = []
        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        from mediad.notify.sender import _apprise_notify
        url = f"json://127.0.0.1:{server.server_port}/"
        sent = []
        sender = threading.Thread(target=lambda: sent.append(_apprise_notify(url, "t", "body")))
        sender.start()
        sender.join(60)
        assert sent == [True], sent
        assert b'"body"' in got[0], got
        assert "requests.sessions" in sys.modules
        print("ok")
        """,
        tmp_path,
    )
    assert out == "ok"


def test_a_worker_imports_no_redis_and_its_socketio_client_still_works(tmp_path: Path) -> None:
    out = run(
        """
        import asyncio, sys
        from mediad import zygote
        zygote._load_worker()  # what the zygote loads before it forks the workers
        import mediad.worker.client, mediad.worker.run_ytdlp
        def redis_modules():
            return sorted(m for m in sys.modules
                          if m.split(".")[0] in ("redis", "aioredis", "valkey"))
        assert not redis_modules(), redis_modules()
        assert "requests" in sys.modules  # yt-dlp's HTTP, in the zygote, keeps it
        # The worker's client, as client.Worker makes it, against a real server.
        import socketio
        from aiohttp import web
        async def main():
            server = socketio.AsyncServer(async_mode="aiohttp")
            @server.on("ping", namespace="/w")
            async def ping(sid, data):
                return {"pong": data}
            app = web.Application()
            server.attach(app)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(f"http://127.0.0.1:{port}", namespaces=["/w"],
                                 transports=["websocket"])
            answer = await client.call("ping", 7, namespace="/w", timeout=10)
            await client.disconnect()
            await runner.cleanup()
            return answer
        assert asyncio.run(main()) == {"pong": 7}
        assert not redis_modules(), redis_modules()
        import redis.asyncio  # not hidden any more
        print("ok", redis.asyncio.Redis is not None)
        """,
        tmp_path,
    )
    assert out == "ok True"


def test_what_was_imported_already_is_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "wants.py").write_text(
        "try:\n    import json\nexcept ImportError:\n    json = None\n"
        "try:\n    import csv\nexcept ImportError:\n    csv = None\n"
    )
    out = run(
        """
        import sys
        import json
        from mediad import imports
        wants = imports.import_without("wants", "json", "csv")
        print(wants.json is json, wants.csv, "csv" in sys.modules, sys.modules["json"] is json)
        import csv
        print(csv.reader is not None)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["True None False True", "True"]


def test_a_failing_import_leaves_nothing_hidden(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    out = run(
        """
        import sys
        from mediad import imports
        try:
            imports.import_without("broken", "csv")
        except RuntimeError as exc:
            print(exc)
        import csv
        print("csv" in sys.modules and csv.reader is not None)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["broken on purpose", "True"]
