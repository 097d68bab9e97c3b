"""The egress proxy with the real tools (curl, aria2c, yt-dlp, ffmpeg) in front of it.

Loopback only. 127.0.0.1 is the "outside" (let through with ``allow_hosts``); 127.0.0.2,
127.0.0.3 and ::1 stand for internal addresses, each watched by a :class:`Trap` server
that must see no request: had the guard a bug, the tool would land there, still on
loopback. No test looks up a real name: the proxies here resolve from a fixed table, and
names only ever reach them, never a tool's own resolver.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from mediad.egress import Blocked, EgressProxy, system_resolver, tool_environment
from mediad.netpolicy import NetPolicy
from tests.support.media import make_hls, make_random_file, make_video, sha256_file
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually

TOOL_TIMEOUT_S = 30.0
BLOB_BYTES = 3 * 1024 * 1024
BIG_BYTES = 48 * 1024 * 1024
HOSTS = {"localhost": ["127.0.0.1"]}

YTDLP = str(Path(sys.executable).with_name("yt-dlp"))
ARIA2 = [
    "aria2c",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--download-result=hide",
    "--allow-overwrite=true",
    "--auto-file-renaming=false",
    "--file-allocation=none",
    "--follow-torrent=false",
    "--follow-metalink=false",
    "--max-tries=1",
    "--connect-timeout=5",
    "--timeout=10",
]
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
WHITELIST = ["-protocol_whitelist", "http,https,tcp,tls,crypto"]


async def hosts_resolver(host: str, port: int) -> list[str]:
    """/etc/hosts-style answers only: a test must never send a DNS query off the box."""
    try:
        return HOSTS[host.lower()]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test table") from None


# -- servers ------------------------------------------------------------------------------


class Trap:
    """A server on a forbidden loopback address; every request it gets is a leak."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.hits: list[str] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        return web.Response(body=b"internal secret\n", content_type="video/mp4")

    def url(self, path: str = "/x.mp4", host: str | None = None) -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("egress-media")
    make_video(root / "video.mp4", seconds=2.0)
    make_random_file(root / "blob.bin", BLOB_BYTES, seed=7)
    make_random_file(root / "big.bin", BIG_BYTES, seed=8)
    make_hls(root / "hls", seconds=4.0, segment_s=2.0)
    return root


@pytest.fixture(scope="module")
async def server(media: Path) -> AsyncIterator[MediaServer]:
    async with MediaServer(media) as srv:
        yield srv


@pytest.fixture(scope="module")
async def trap() -> AsyncIterator[Trap]:
    trap = Trap("127.0.0.2")
    await trap.start()
    yield trap
    await trap.stop()
    assert trap.hits == [], "a forbidden address was reached"


@pytest.fixture(scope="module")
async def trap6() -> AsyncIterator[Trap]:
    trap = Trap("::1")
    await trap.start()
    yield trap
    await trap.stop()
    assert trap.hits == [], "a forbidden address was reached"


@pytest.fixture
async def proxy() -> AsyncIterator[EgressProxy]:
    policy = NetPolicy(allow_hosts=["127.0.0.1"])
    async with EgressProxy(policy, resolver=hosts_resolver) as proxy:
        yield proxy
    assert proxy.connections == 0
    assert not egress_tasks()


def egress_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("egress-")]


def port_of(server: MediaServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


# -- clients ------------------------------------------------------------------------------


@dataclass
class Ran:
    returncode: int
    output: str


async def run(
    *args: str | Path, timeout_s: float = TOOL_TIMEOUT_S, env: dict[str, str] | None = None
) -> Ran:
    """Run a tool without blocking the loop the proxy and servers live in."""
    # No proxy variables from outside: each tool gets its proxy from its flags only.
    env = tool_environment(os.environ) if env is None else env
    proc = await asyncio.create_subprocess_exec(
        *map(str, args),
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{args[0]} did not finish within {timeout_s} s")
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(errors="replace"))


async def run_ok(*args: str | Path) -> str:
    ran = await run(*args)
    assert ran.returncode == 0, f"{args[0]} exited {ran.returncode}:\n{ran.output[-3000:]}"
    return ran.output


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw(proxy: EgressProxy, request: bytes, timeout_s: float = 10) -> Answer:
    """Send ``request`` to the proxy as is; the answer up to the proxy's close."""
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(timeout_s):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


def get(url: str, *headers: str) -> bytes:
    lines = [f"GET {url} HTTP/1.1", "Host: ignored.example", "User-Agent: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(authority: str) -> bytes:
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- downloads that are allowed ---------------------------------------------------------------


async def test_curl_full_range_and_resume(
    proxy: EgressProxy, server: MediaServer, media: Path, tmp_path: Path
) -> None:
    source = (media / "blob.bin").read_bytes()
    out = tmp_path / "blob.bin"
    await run_ok("curl", "-sS", "--fail", "-x", proxy.url, "-o", out, server.url("blob.bin"))
    assert sha256(out.read_bytes()) == sha256(source)
    served = server.served[-1]
    assert served.headers.get("Connection") == "close"
    assert "Proxy-Connection" not in served.headers

    part = tmp_path / "part.bin"
    await run_ok("curl", "-sS", "--fail", "-x", proxy.url, "-r", "1000-1999", "-o", part, server.url("blob.bin"))  # fmt: skip
    assert part.read_bytes() == source[1000:2000]
    assert (server.served[-1].range_start, server.served[-1].range_end) == (1000, 1999)

    resumed = tmp_path / "resumed.bin"
    resumed.write_bytes(source[:1_000_000])
    await run_ok("curl", "-sS", "--fail", "-x", proxy.url, "-C", "-", "-o", resumed, server.url("blob.bin"))  # fmt: skip
    assert sha256(resumed.read_bytes()) == sha256(source)
    assert server.served[-1].range_start == 1_000_000
    assert proxy.blocked == []


@pytest.mark.parametrize("method", ["get", "tunnel"])
async def test_aria2_split_download_and_resume(
    proxy: EgressProxy, server: MediaServer, media: Path, tmp_path: Path, method: str
) -> None:
    source_sha = sha256_file(media / "blob.bin")
    flags = [f"--all-proxy={proxy.url}", f"--proxy-method={method}", "-d", tmp_path]
    before = len(server.served)
    # throttled per response, so that aria2 opens its other connections before the first ends
    url = server.url("blob.bin", rate=4_000_000)
    await run_ok(*ARIA2, *flags, "-x4", "-s4", "--min-split-size=1M", "-o", "a.bin", url)
    assert sha256_file(tmp_path / "a.bin") == source_sha
    served = server.served[before:]
    assert [s.range_start for s in served if s.range_start], "aria2 split the file into ranges"
    # our forced "Connection: close" marks a forwarded request; a tunnel carries aria2's own
    assert all((s.headers.get("Connection") == "close") == (method == "get") for s in served)

    half = BLOB_BYTES // 2
    with (tmp_path / "a.bin").open("r+b") as f:
        f.truncate(half)
    resume = [a for a in ARIA2 if a != "--allow-overwrite=true"]  # it would start over
    await run_ok(*resume, *flags, "-c", "-o", "a.bin", server.url("blob.bin"))
    assert sha256_file(tmp_path / "a.bin") == source_sha
    assert server.served[-1].range_start == half
    assert proxy.blocked == []


async def test_ytdlp_downloads_through_proxy(
    proxy: EgressProxy, server: MediaServer, media: Path, tmp_path: Path
) -> None:
    await run_ok(*ytdlp(proxy, tmp_path), server.url("video.mp4"))
    assert sha256_file(tmp_path / "out.mp4") == sha256_file(media / "video.mp4")
    assert proxy.bytes_relayed >= (media / "video.mp4").stat().st_size


async def test_ffmpeg_http_and_hls_through_proxy(
    proxy: EgressProxy, server: MediaServer, media: Path, tmp_path: Path
) -> None:
    flags = ["-http_proxy", proxy.url, *WHITELIST]
    await run_ok(*FFMPEG, *flags, "-i", server.url("video.mp4"), "-c", "copy", tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").stat().st_size > 0

    relayed_before = proxy.bytes_relayed
    before = len(server.served)
    await run_ok(*FFMPEG, *flags, "-i", server.url("hls/index.m3u8"), "-c", "copy", tmp_path / "h.ts")  # fmt: skip
    segments = sorted(media.glob("hls/seg*.ts"))
    fetched = {s.path for s in server.served[before:]}
    assert {f"hls/{s.name}" for s in segments} <= fetched
    # every segment went through the proxy (ffmpeg passes -http_proxy to the HLS demuxer)
    assert proxy.bytes_relayed - relayed_before >= sum(s.stat().st_size for s in segments)
    assert all(s.headers.get("Connection") == "close" for s in server.served[before:])


def ytdlp(proxy: EgressProxy, out_dir: Path) -> list[str | Path]:
    return [
        YTDLP,
        "--ignore-config",
        "--no-cache-dir",
        "--no-plugin-dirs",
        "--no-progress",
        "--proxy",
        proxy.url,
        "--socket-timeout",
        "10",
        "-o",
        out_dir / "out.%(ext)s",
        "--",
    ]


# -- refusals ----------------------------------------------------------------------------

FORBIDDEN_FORMS = [
    "127.0.0.2",
    "127.0.0.2.",
    "2130706434",
    "0x7f000002",
    "0X7F.2",
    "0177.0.0.2",
    "017700000002",
    "127.2",
    "127.0.2",
    "%31%32%37.0.0.2",
    "[::ffff:127.0.0.2]",
    "[::ffff:7f00:2]",
    "[0:0:0:0:0:ffff:7f00:2]",
    "[::127.0.0.2]",
    "[64:ff9b::127.0.0.2]",
    "[2002:7f00:2::1]",
]


@pytest.mark.parametrize("form", FORBIDDEN_FORMS)
async def test_forbidden_literal_forms_are_refused(
    proxy: EgressProxy, trap: Trap, form: str
) -> None:
    answer = await raw(proxy, get(trap.url(host=form)))
    assert answer.status == 403
    reason = answer.headers["x-mediad-egress"]
    assert "127.0.0.2" in reason and "loopback" in reason
    assert answer.body.startswith(b"403 Forbidden: ")
    [blocked] = proxy.blocked
    assert (blocked.host, blocked.port, blocked.reason) == (form.strip("[]"), trap.port, reason)

    answer = await raw(proxy, connect(f"{form}:{trap.port}"))
    assert answer.status == 403
    assert len(proxy.blocked) == 2
    assert trap.hits == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("[::1]:{v6}", "loopback address ::1"),
        ("[0:0:0:0:0:0:0:1]:{v6}", "loopback address ::1"),
        ("127.0.0.3:{v4}", "loopback address 127.0.0.3"),
        ("0.0.0.0:{v4}", "unspecified address 0.0.0.0"),
        ("0:{v4}", "unspecified address 0.0.0.0"),
        ("[::]:{v6}", "unspecified address ::"),
        (
            "[::ffff:0.0.0.0]:{v4}",
            "unspecified address 0.0.0.0 (via IPv4-mapped ::ffff:0.0.0.0)",
        ),
        ("127.0.0.1:{self}", "the egress proxy itself"),
    ],
)
async def test_other_internal_targets_are_refused(
    proxy: EgressProxy, trap: Trap, trap6: Trap, target: str, reason: str
) -> None:
    self_port = int(proxy.url.rsplit(":", 1)[1])
    target = target.format(v4=trap.port, v6=trap6.port, self=self_port)
    for request in (get(f"http://{target}/x"), connect(target)):
        answer = await raw(proxy, request)
        assert (answer.status, answer.headers["x-mediad-egress"]) == (403, reason)
    assert [b.reason for b in proxy.blocked] == [reason, reason]


@pytest.mark.parametrize("host", ["127.0.0.2", "2130706434", "0x7f000002", "[::ffff:127.0.0.2]"])
async def test_curl_is_refused(proxy: EgressProxy, trap: Trap, host: str) -> None:
    ran = await run("curl", "-sS", "-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}", trap.url(host=host))  # fmt: skip
    assert ran.output.strip() == "403"
    [blocked] = proxy.blocked
    assert "loopback address 127.0.0.2" in blocked.reason


async def test_redirect_to_internal_is_refused(
    proxy: EgressProxy, server: MediaServer, trap: Trap, trap6: Trap, tmp_path: Path
) -> None:
    server.add_redirect("go/v4.mp4", trap.url("/v4.mp4"))
    server.add_redirect("go/hex.mp4", trap.url("/hex.mp4", host="0x7f000002"))
    server.add_redirect("go/v6.mp4", trap6.url("/v6.mp4"))

    ran = await run("curl", "-sS", "--fail", "-L", "-x", proxy.url, "-o", tmp_path / "c", server.url("go/v4.mp4"))  # fmt: skip
    assert ran.returncode == 22 and "403" in ran.output
    ran = await run(*ARIA2, f"--all-proxy={proxy.url}", "-d", tmp_path, server.url("go/v6.mp4"))
    assert ran.returncode != 0
    ran = await run(*ytdlp(proxy, tmp_path), server.url("go/hex.mp4"))
    assert ran.returncode != 0 and "403" in ran.output

    assert {(b.port, b.address) for b in proxy.blocked} == {
        (trap.port, "127.0.0.2"),
        (trap6.port, "::1"),
    }
    assert trap.hits == [] and trap6.hits == []


async def test_hls_segments_on_internal_host_are_refused(
    proxy: EgressProxy, server: MediaServer, media: Path, trap: Trap, tmp_path: Path
) -> None:
    # seg0 comes from the allowed server, the others point at the internal one
    playlist = (media / "hls" / "index.m3u8").read_text().splitlines()
    evil = [
        server.url(f"hls/{line}") if line == "seg0.ts" else trap.url(f"/{line}")
        if line.endswith(".ts") else line
        for line in playlist
    ]  # fmt: skip
    server.add_bytes("evil/index.m3u8", "\n".join(evil).encode(), "application/vnd.apple.mpegurl")
    ffmpeg = [*FFMPEG, "-loglevel", "warning", "-http_proxy", proxy.url, *WHITELIST]
    ran = await run(*ffmpeg, "-i", server.url("evil/index.m3u8"), "-c", "copy", tmp_path / "e.ts")
    # ffmpeg skips segments it cannot open and may still exit 0: the worker has to read
    # "Failed to open segment" to notice; the bytes never left, which is what counts here.
    assert "403 Forbidden" in ran.output and "Failed to open segment" in ran.output
    assert [s.path for s in server.served if s.path.startswith("hls/seg")][-1:] == ["hls/seg0.ts"]
    segments = [line for line in playlist if line.endswith(".ts")]
    assert {b.host for b in proxy.blocked} == {"127.0.0.2"}
    assert len(proxy.blocked) >= len(segments) - 1
    assert trap.hits == []

    # a playlist whose first segment is internal fails outright
    first = "\n".join(trap.url(f"/{line}") if line.endswith(".ts") else line for line in playlist)
    server.add_bytes("evil/first.m3u8", first.encode(), "application/vnd.apple.mpegurl")
    ran = await run(*FFMPEG, *ffmpeg[len(FFMPEG):], "-i", server.url("evil/first.m3u8"), "-c", "copy", tmp_path / "f.ts")  # fmt: skip
    assert ran.returncode != 0, ran.output
    assert trap.hits == []


async def test_ytdlp_refuses_video_embedded_in_a_page(
    proxy: EgressProxy, server: MediaServer, trap: Trap, tmp_path: Path
) -> None:
    # the same page with an allowed video shows yt-dlp does follow the embedded URL
    server.add_page("embed/ok.html", page(server.url("video.mp4")))
    await run_ok(*ytdlp(proxy, tmp_path), server.url("embed/ok.html"))
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert proxy.blocked == []

    server.add_page("embed/evil.html", page(trap.url("/x.mp4")))
    ran = await run(*ytdlp(proxy, tmp_path / "evil"), server.url("embed/evil.html"))
    assert ran.returncode != 0
    assert proxy.blocked and proxy.blocked[0].address == "127.0.0.2"
    assert trap.hits == []


def page(video_url: str) -> str:
    return (
        "<!doctype html><html><head><title>clip</title></head><body>"
        f'<video controls src="{video_url}"></video></body></html>'
    )


@pytest.mark.parametrize("tool", ["curl", "aria2c", "ffmpeg", "yt-dlp"])
async def test_tool_environment_defeats_no_proxy(
    proxy: EgressProxy, trap: Trap, tmp_path: Path, tool: str
) -> None:
    # Each of these tools would go straight to 127.0.0.2, past its proxy flag, with this
    # no_proxy in its environment: tool_environment() is what keeps them on the proxy.
    outside = {**os.environ, "no_proxy": "127.0.0.2,localhost,*", "NO_PROXY": "*"}
    outside["HTTP_PROXY"] = outside["https_proxy"] = "http://127.0.0.3:9"
    env = tool_environment(outside, proxy.url)
    assert "no_proxy" not in env and "NO_PROXY" not in env
    assert env["http_proxy"] == env["HTTPS_PROXY"] == proxy.url
    url = trap.url("/env.mp4")
    command: list[str | Path] = {
        "curl": ["curl", "-sS", "-x", proxy.url, "-o", tmp_path / "c", url],
        "aria2c": [*ARIA2, f"--all-proxy={proxy.url}", "-d", tmp_path, url],
        "ffmpeg": [*FFMPEG, "-http_proxy", proxy.url, *WHITELIST, "-i", url, "-f", "null", "-"],
        "yt-dlp": [*ytdlp(proxy, tmp_path), url],
    }[tool]
    await run(*command, env=env)
    assert proxy.blocked and proxy.blocked[0].address == "127.0.0.2"
    assert trap.hits == []


async def test_dns_rebinding_connects_to_the_checked_address(
    server: MediaServer, media: Path
) -> None:
    port = port_of(server)
    trap = Trap("127.0.0.2", port)  # same port as the allowed server: only the IP differs
    await trap.start()
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.1", "127.0.0.2"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    policy = NetPolicy(allow_hosts=["127.0.0.1/32"])
    try:
        async with EgressProxy(policy, resolver=rebinding) as proxy:
            before = len(server.served)
            answer = await raw(proxy, get(f"http://rebind.test:{port}/blob.bin"))
            assert answer.status == 200
            assert sha256(answer.body) == sha256_file(media / "blob.bin")
            assert calls == ["rebind.test"]  # resolved once: the check and the connect
            assert len(server.served) == before + 1

            answer = await raw(proxy, get(f"http://rebind.test:{port}/blob.bin"))
            assert (answer.status, answer.headers["x-mediad-egress"]) == (
                403,
                "loopback address 127.0.0.2",
            )
            answer = await raw(proxy, connect(f"rebind.test:{port}"))
            assert answer.status == 403  # one bad answer among good ones is enough
            assert calls == ["rebind.test"] * 3
            assert (
                proxy.blocked
                == [Blocked("rebind.test", port, "127.0.0.2", "loopback address 127.0.0.2")] * 2
            )
            assert len(server.served) == before + 1
            assert trap.hits == []
    finally:
        await trap.stop()


async def test_allow_private_lets_internal_addresses_through() -> None:
    trap = Trap("127.0.0.3")
    await trap.start()
    try:
        async with EgressProxy(NetPolicy(allow_private=True), resolver=hosts_resolver) as proxy:
            answer = await raw(proxy, get(trap.url("/ok")))
            assert (answer.status, answer.body) == (200, b"internal secret\n")
            answer = await raw(proxy, get(trap.url("/ok", host="2130706435")))
            assert answer.status == 200
            assert trap.hits == ["/ok", "/ok"]
            assert proxy.blocked == []
            answer = await raw(proxy, get("http://169.254.169.254/latest/meta-data/"))
            assert answer.headers["x-mediad-egress"] == "cloud metadata address 169.254.169.254"
    finally:
        await trap.stop()


async def test_clear_forgets_refusals(proxy: EgressProxy, trap: Trap) -> None:
    await raw(proxy, get(trap.url()))
    assert len(proxy.blocked) == 1
    proxy.clear()
    assert proxy.blocked == []


# -- protocol errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (get("ftp://127.0.0.1/x"), 403, "scheme not allowed"),
        (get("gopher://127.0.0.1:70/x"), 403, "scheme not allowed"),
        (get("file:///etc/passwd"), 403, "scheme not allowed"),
        (get("/relative"), 400, "not a proxy request"),
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET http://127.0.0.1/ HTTP/2.0\r\n\r\n", 400, "malformed request line"),
        (b"GET http://127.0.0.1/ HTTP/1.1\r\nBad Header\r\n\r\n", 400, "malformed header"),
        (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "malformed header"),
        (connect("127.0.0.1"), 400, "CONNECT needs host:port"),
        (connect("127.0.0.1:0"), 400, "malformed port"),
        (connect("127.0.0.1:99999"), 400, "malformed port"),
        (get("http://::1/x"), 400, "IPv6 host without brackets"),
        (get("http://bad_host!/x"), 400, "malformed host"),
        (get("http://nowhere.test/x"), 502, "cannot resolve nowhere.test"),
        (get("http://127.0.0.1:1/x"), 502, "cannot connect to 127.0.0.1:1"),
        (connect("127.0.0.1:1"), 502, "cannot connect to 127.0.0.1:1"),
    ],
)
async def test_error_answers(
    proxy: EgressProxy, request_bytes: bytes, status: int, reason: str
) -> None:
    answer = await raw(proxy, request_bytes)
    assert answer.status == status
    assert answer.headers["x-mediad-egress"].startswith(reason)
    assert answer.headers["connection"] == "close"
    assert len(proxy.blocked) == (1 if status == 403 else 0)
    # a 502 is a connection that could not be made, recorded with its cause
    assert len(proxy.failures) == (1 if status == 502 else 0)


@pytest.mark.parametrize("tool", ["curl", "aria2c", "ffmpeg", "yt-dlp"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_failed_connections_are_recorded_with_their_cause(
    proxy: EgressProxy, tmp_path: Path, tool: str, scheme: str
) -> None:
    """Each tool only sees a 502 (or a failed CONNECT); the proxy keeps why."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = sock.getsockname()[1]
    sock.close()
    cases = [
        ("nowhere.test", "could not resolve nowhere.test (nowhere.test is not in the test table)"),
        (f"127.0.0.1:{closed}", f"connection to 127.0.0.1:{closed} refused"),
    ]
    for authority, reason in cases:
        proxy.clear()
        url = f"{scheme}://{authority}/x.mp4"
        command: list[str | Path] = {
            "curl": ["curl", "-sS", "--fail", "-x", proxy.url, "-o", tmp_path / "c", url],
            "aria2c": [*ARIA2, f"--all-proxy={proxy.url}", "-d", tmp_path, url],
            "ffmpeg": [*FFMPEG, "-http_proxy", proxy.url, "-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy", "-i", url, "-f", "null", "-"],
            "yt-dlp": [*ytdlp(proxy, tmp_path), url],
        }[tool]  # fmt: skip
        ran = await run(*command)
        assert ran.returncode != 0, ran.output
        # what the tool itself could tell: a 502 (ffmpeg "5XX"; aria2c over CONNECT
        # "Proxy connection failed."), never the cause
        assert any(words in ran.output for words in ("502", "5XX", "Proxy connection failed"))
        assert reason not in ran.output
        assert proxy.failures and {f.reason for f in proxy.failures} == {reason}
        assert proxy.blocked == []


async def test_scheme_refusal_is_recorded(proxy: EgressProxy) -> None:
    await raw(proxy, get("ftp://127.0.0.1:21/x"))
    await raw(proxy, get("gopher://[::1]/x"))
    assert proxy.blocked == [
        Blocked("127.0.0.1", 21, None, "scheme not allowed: ftp"),
        Blocked("::1", 0, None, "scheme not allowed: gopher"),
    ]


async def test_oversized_header_block(proxy: EgressProxy, server: MediaServer) -> None:
    big = get(server.url("blob.bin"), "X-Big: " + "a" * (70 * 1024))
    answer = await raw(proxy, big)
    assert (answer.status, answer.headers["x-mediad-egress"]) == (
        400,
        "request header block over 64 KiB",
    )
    # 60 KiB in lines the origin accepts (aiohttp takes 8 KiB a line)
    fits = get(server.url("video.mp4"), *(f"X-Big-{i}: " + "a" * 4096 for i in range(15)))
    assert len(fits) > 60 * 1024
    assert (await raw(proxy, fits)).status == 200


async def test_header_timeout_closes_idle_connections() -> None:
    async with EgressProxy(NetPolicy(), header_timeout_s=0.3) as proxy:
        answer = await raw(proxy, b"GET http://127.0.0.1/", timeout_s=5)
        assert answer.status == 408
        assert proxy.connections == 0


async def test_system_resolver_answers_numeric_hosts_without_lookups() -> None:
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]
    assert await system_resolver("::1", 80) == ["::1"]


# -- robustness ---------------------------------------------------------------------------


async def test_client_leaving_mid_download_frees_everything(
    proxy: EgressProxy, server: MediaServer
) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get(server.url("blob.bin", rate=500_000)))
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(10_000)
    writer.transport.abort()
    await eventually(lambda: proxy.connections == 0, timeout_s=5, what="proxy connection closed")
    await eventually(lambda: not egress_tasks(), timeout_s=5, what="relay task gone")
    # the origin saw its client leave too, long before the end of the body
    record = await eventually(
        lambda: [s for s in server.served if s.path == "blob.bin" and s.bytes_sent < BLOB_BYTES],
        timeout_s=5,
        what="origin response cut short",
    )
    assert record


async def test_slow_client_is_flow_controlled(
    proxy: EgressProxy, server: MediaServer, media: Path
) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 1024)
    writer.write(get(server.url("big.bin")))
    await reader.readuntil(b"\r\n\r\n")

    # Not reading: the proxy stops reading from the origin once buffers are full.
    async def settled() -> int | None:
        before = proxy.bytes_relayed
        await asyncio.sleep(0.3)
        return before if proxy.bytes_relayed == before else None

    stalled_at = await eventually(settled, timeout_s=10, what="relay to stall")
    assert stalled_at < BIG_BYTES // 3, "the proxy buffered the body instead of pausing"

    digest = hashlib.sha256()
    received = 0
    while chunk := await reader.read(1024 * 1024):
        digest.update(chunk)
        received += len(chunk)
    writer.close()
    assert received == BIG_BYTES
    assert digest.hexdigest() == sha256_file(media / "big.bin")


async def test_many_concurrent_connections(proxy: EgressProxy, server: MediaServer) -> None:
    body = os.urandom(32 * 1024)
    server.add_bytes("small.bin", body)

    async def one(i: int) -> Answer:
        request = get(server.url("small.bin")) if i % 3 else get(f"http://127.0.0.2:9/{i}")
        return await raw(proxy, request)

    answers = await asyncio.gather(*(one(i) for i in range(150)))
    assert all(a.body == body for i, a in enumerate(answers) if i % 3)
    assert all(a.status == 403 for i, a in enumerate(answers) if not i % 3)
    assert len(proxy.blocked) == 50


async def test_connection_limit(server: MediaServer) -> None:
    policy = NetPolicy(allow_hosts=["127.0.0.1"])
    async with EgressProxy(policy, max_connections=2) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await eventually(lambda: proxy.connections == 2, timeout_s=5, what="2 connections")
        answer = await raw(proxy, get(server.url("video.mp4")))
        assert answer.status == 503
        for _, writer in held:
            writer.close()
        await eventually(lambda: proxy.connections == 0, timeout_s=5, what="connections closed")
        assert (await raw(proxy, get(server.url("video.mp4")))).status == 200


async def test_stop_ends_downloads_in_flight(server: MediaServer) -> None:
    proxy = EgressProxy(NetPolicy(allow_hosts=["127.0.0.1"]))
    await proxy.start()
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get(server.url("blob.bin", stall_after=1000)))
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(1000)
    async with asyncio.timeout(5):
        await proxy.stop()
        assert await reader.read() == b""  # the client sees the end
    writer.close()
    assert proxy.connections == 0
    assert not egress_tasks()


async def test_idle_relay_is_closed(server: MediaServer) -> None:
    policy = NetPolicy(allow_hosts=["127.0.0.1"])
    async with EgressProxy(policy, idle_timeout_s=0.3) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get(server.url("blob.bin", stall_after=500)))
        async with asyncio.timeout(5):
            data = await reader.read()  # until the proxy gives up on the stalled origin
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and len(body) == 500
        await eventually(lambda: proxy.connections == 0, timeout_s=5, what="relay closed")


@pytest.fixture(scope="module")
async def echo() -> AsyncIterator[str]:
    """An origin on 127.0.0.1 answering the sha256 and length of each request body."""

    async def digest(request: web.Request) -> web.Response:
        body = await request.read()
        te = request.headers.get("Transfer-Encoding", "-")
        return web.Response(text=f"{len(body)} {sha256(body)} {te}")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", digest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    "extra",
    [[], ["-H", "Transfer-Encoding: chunked"], ["-p"], ["-H", "Expect: 100-continue"]],
    ids=["length", "chunked", "tunnel", "expect"],
)
async def test_request_bodies_pass(
    proxy: EgressProxy, echo: str, tmp_path: Path, extra: list[str]
) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "body").write_bytes(body)
    out = await run_ok("curl", "-sS", "--fail", "-x", proxy.url, *extra, "--data-binary", f"@{tmp_path / 'body'}", echo + "/up")  # fmt: skip
    size, digest, te = out.split()
    assert (int(size), digest) == (len(body), sha256(body))
    assert te == ("chunked" if "chunked" in " ".join(extra) else "-")


# -- HTTPS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
async def tls_server(
    certificate: tuple[Path, Path], media: Path
) -> AsyncIterator[Callable[[str], str]]:
    """``https://HOST:PORT``: the media under ``/media/``, a greeting elsewhere."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello over tls {request.path}")

    app = web.Application()
    app.router.add_static("/media", media)
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    yield lambda host: f"https://{host}:{port}"
    await runner.cleanup()


async def test_https_tunnel_with_curl(
    proxy: EgressProxy, tls_server: Callable[[str], str], certificate: tuple[Path, Path]
) -> None:
    out = await run_ok("curl", "-sS", "--fail", "--cacert", certificate[0], "-x", proxy.url, tls_server("127.0.0.1") + "/t")  # fmt: skip
    assert out == "hello over tls /t"


async def test_https_with_the_tools(
    proxy: EgressProxy,
    tls_server: Callable[[str], str],
    certificate: tuple[Path, Path],
    media: Path,
    tmp_path: Path,
) -> None:
    base = tls_server("127.0.0.1") + "/media"
    aria2 = [*ARIA2, f"--all-proxy={proxy.url}", f"--ca-certificate={certificate[0]}"]
    await run_ok(*aria2, "-d", tmp_path, "-o", "b.bin", base + "/blob.bin")
    assert sha256_file(tmp_path / "b.bin") == sha256_file(media / "blob.bin")

    # ffmpeg tunnels https through its "httpproxy" protocol, which the whitelist must name
    ran = await run(*FFMPEG, "-http_proxy", proxy.url, *WHITELIST, "-i", base + "/hls/index.m3u8", "-c", "copy", tmp_path / "a.ts")  # fmt: skip
    assert ran.returncode != 0 and "'httpproxy' not on whitelist" in ran.output
    whitelist = ["-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy"]
    await run_ok(*FFMPEG, "-http_proxy", proxy.url, *whitelist, "-i", base + "/hls/index.m3u8", "-c", "copy", tmp_path / "b.ts")  # fmt: skip

    ytdlp_tls = [*ytdlp(proxy, tmp_path)[:-1], "--no-check-certificates", "--"]
    await run_ok(*ytdlp_tls, base + "/video.mp4")
    assert sha256_file(tmp_path / "out.mp4") == sha256_file(media / "video.mp4")
    assert proxy.blocked == []


async def test_https_absolute_form_is_verified(
    tls_server: Callable[[str], str], certificate: tuple[Path, Path]
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    policy = NetPolicy(allow_hosts=["127.0.0.1"])
    async with EgressProxy(policy, resolver=hosts_resolver, tls_context=trusted) as proxy:
        answer = await raw(proxy, get(tls_server("localhost") + "/abs"))
        assert (answer.status, answer.body) == (200, b"hello over tls /abs")
    async with EgressProxy(policy, resolver=hosts_resolver) as proxy:  # system trust store
        answer = await raw(proxy, get(tls_server("127.0.0.1") + "/abs"))
        assert answer.status == 502
        assert "CERTIFICATE_VERIFY_FAILED" in answer.headers["x-mediad-egress"]
