"""``mediad get | ls | show | cancel | pause | resume | retry | stop | rm`` run as processes
against a real service: exit codes, ``--json``, the files ``--output`` writes, a failed
job, plain progress lines when stdout is a pipe, and a token-protected service."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mediad import client_cli
from mediad.client_cli import following as client_following
from mediad.service import Service
from tests.support.cli import ROOT, clean_env, mediad
from tests.support.harness import Api, running_service
from tests.support.mediaserver import MediaServer
from tests.support.ports import fixed_port

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOKEN = "cli-test-token-0123456789"


@pytest.fixture(scope="module")
async def idle_service(new_module_config: Any) -> Any:
    """No workers: every job stays queued until a test moves it."""
    config = await new_module_config(workers={"processes": 0})
    async with Service(config) as service:
        yield service


@pytest.fixture(scope="module")
async def token_service(new_module_config: Any) -> Any:
    config = await new_module_config(server={"api_tokens": [TOKEN]}, workers={"processes": 1})
    async with running_service(config) as service:
        yield service


# --- get --------------------------------------------------------------------------


async def test_get_saves_the_exact_bytes_and_prints_plain_progress_lines(
    shared_service: Service, media_server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    # Paced to about 2 s, so that progress events come while it downloads.
    url = media_server.url("blob.bin", rate=2 * 1024 * 1024)
    out = tmp_path / "out"
    run = await mediad(
        "get", url, "--type", "aria2", "--output", str(out),
        env=clean_env(MEDIAD_URL=shared_service.base_url),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert (out / "blob.bin").read_bytes() == (media_dir / "blob.bin").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["blob.bin"]  # no partial file left
    lines = run.out.splitlines()
    assert re.fullmatch(r"job [0-9a-f-]{36} \(aria2\)", lines[0]), lines
    # Not a terminal: plain lines, no cursor movement, no colours.
    assert "\x1b" not in run.out and "\r" not in run.out
    percents = [
        int(m[1]) for line in lines if (m := re.match(r"^downloading\s+(\d+)%\s+\S+ \S+/s", line))
    ]
    assert percents, run.out
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert lines[-2] == "completed: blob.bin (4.0 MiB)"
    assert lines[-1] == f"saved {out / 'blob.bin'}"


async def test_get_json_prints_the_completed_job_and_the_saved_files(
    shared_service: Service, media_server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    run = await mediad(
        "get", media_server.url("video.mp4"), "--json", "--output", str(tmp_path),
        "--server", shared_service.base_url, env=clean_env(),
    )  # fmt: skip
    assert run.code == 0, run.err
    job = run.json()  # the only thing on stdout
    assert job["status"] == "completed" and job["filename"] == "video.mp4"
    assert job["savedFiles"] == [str(tmp_path / "video.mp4")]
    assert (tmp_path / "video.mp4").read_bytes() == (media_dir / "video.mp4").read_bytes()


async def test_a_failed_job_exits_1_with_its_error_code_and_message(
    shared_service: Service, media_server: MediaServer
) -> None:
    env = clean_env(MEDIAD_URL=shared_service.base_url)
    run = await mediad("get", media_server.url("missing.bin"), "--type", "aria2", env=env)
    assert run.code == 1, (run.out, run.err)
    match = re.search(r"mediad: job (\S+) failed: not_found: (.+)", run.err)
    assert match, run.err
    as_json = await mediad("get", media_server.url("missing.bin"), "--json", env=env)
    assert as_json.code == 1
    job = as_json.json()
    assert job["status"] == "failed" and job["errorCode"] == "not_found" and job["errorMessage"]
    assert f"failed: not_found: {job['errorMessage']}" in as_json.err


async def test_get_of_a_job_that_ends_before_it_is_followed(
    shared_service: Service, media_server: MediaServer, tmp_path: Path
) -> None:
    """A tiny file finishes before the subscription: the ack's job says so."""
    media_server.add_bytes("tiny.txt", b"tiny\n", "text/plain")
    run = await mediad(
        "get", media_server.url("tiny.txt"), "--type", "aria2", "--output", str(tmp_path),
        env=clean_env(MEDIAD_URL=shared_service.base_url),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert (tmp_path / "tiny.txt").read_bytes() == b"tiny\n"
    # Deterministically: jobs that ended (or went) before anyone followed them.
    api = Api(shared_service.base_url)
    client = client_cli.Client(shared_service.base_url, None)
    try:
        done = (await api.submit(media_server.url("tiny.txt"), type="aria2"))["jobId"]
        failed = (await api.submit(media_server.url("absent.mp4")))["jobId"]
        await api.wait_status(done, "completed")
        await api.wait_status(failed, "failed")
        job = await client_cli.follow(client, done, client_cli.Display())
        assert job["status"] == "completed" and job["filename"] == "tiny.txt"
        job = await client_cli.follow(client, failed, client_cli.Display())
        assert job["status"] == "failed" and job["errorCode"] == "not_found"
        assert (await api.request("DELETE", f"/downloads/{done}"))[0] == 204
        with pytest.raises(client_cli.ClientError) as deleted:
            await client_cli.follow(client, done, client_cli.Display())
        assert deleted.value.exit_code == client_cli.EXIT_CANCELLED
        assert "was deleted" in deleted.value.message
    finally:
        await client.close()
        await api.close()


async def test_refusals_and_an_unreachable_server(
    idle_service: Service, media_server: MediaServer
) -> None:
    env = clean_env(MEDIAD_URL=idle_service.base_url)
    refused = await mediad("get", "ftp://example.com/a.mp4", env=env)
    assert refused.code == 4 and "(unsupported_scheme, HTTP 400)" in refused.err, refused.err
    bad_option = await mediad("get", media_server.url("v"), "--type", "ytdlp", "-o", "nope=1", env=env)  # fmt: skip
    assert bad_option.code == 4 and "nope" in bad_option.err
    usage = await mediad("get", media_server.url("v"), "-o", "no-equals-sign", env=env)
    assert usage.code == 2 and "KEY=VALUE" in usage.err
    away = await mediad("ls", "--server", f"http://127.0.0.1:{fixed_port()}", env=env)
    assert away.code == 5 and "cannot reach" in away.err


# --- no-wait, ls, show, the actions, rm ---------------------------------------------


async def test_no_wait_ls_show_actions_and_rm(
    idle_service: Service, media_server: MediaServer
) -> None:
    env = clean_env(MEDIAD_URL=idle_service.base_url)
    url = media_server.url("watch?v=cli")
    run = await mediad(
        "get", url, "--type", "ytdlp", "--no-wait",
        "-o", "maxItems=3", "-o", "playlist=true", "-o", 'subtitles=["en"]', "-o", "format=720p",
        env=env,
    )  # fmt: skip
    assert run.code == 0, run.err
    job_id = run.out.strip()
    assert UUID.match(job_id), run.out
    other = (await mediad("get", media_server.url("video.mp4"), "--no-wait", "--json", env=env)).json()  # fmt: skip
    assert other["status"] == "queued" and other["type"] == "aria2" and UUID.match(other["jobId"])

    shown = await mediad("show", job_id, "--json", env=env)
    assert shown.code == 0
    job = shown.json()
    assert job["status"] == "queued" and job["url"] == url
    assert job["options"] == {
        "maxItems": 3,
        "playlist": True,
        "subtitles": ["en"],
        "format": "720p",
    }
    people = await mediad("show", job_id, env=env)
    assert re.search(r"^status\s+queued$", people.out, re.M), people.out
    assert re.search(r'^options\s+\{.*"maxItems": 3', people.out, re.M), people.out

    listed = (await mediad("ls", "--json", env=env)).json()
    ids = [j["jobId"] for j in listed]
    assert ids.index(other["jobId"]) < ids.index(job_id)  # newest first
    table = (await mediad("ls", "--limit", "2", env=env)).out.splitlines()
    assert table[0].split() == ["ID", "STATUS", "TYPE", "PROGRESS", "SIZE", "CREATED", "NAME"]
    assert table[1].startswith(other["jobId"]) and table[2].startswith(job_id)
    assert len(table) == 3

    async def act(action: str, expect: str) -> None:
        result = await mediad(action, job_id, env=env)
        assert result.code == 0, (action, result.err)
        assert result.out.strip() == f"{job_id}: {expect}"

    await act("pause", "paused")
    again = await mediad("pause", job_id, env=env)
    assert again.code == 4
    assert "invalid_transition, HTTP 409" in again.err and "the job is paused" in again.err
    paused = (await mediad("ls", "--status", "paused", "--json", env=env)).json()
    assert [j["jobId"] for j in paused] == [job_id]
    await act("resume", "queued")
    await act("cancel", "cancelled")
    retried = await mediad("retry", job_id, "--json", env=env)
    assert retried.code == 0 and retried.json()["status"] == "queued"
    stop = await mediad("stop", job_id, env=env)
    assert stop.code == 4 and "the job is queued" in stop.err

    removed = await mediad("rm", job_id, "--json", env=env)
    assert removed.code == 0 and removed.json() == {"jobId": job_id, "deleted": True}
    gone = await mediad("show", job_id, env=env)
    assert gone.code == 4 and "(not_found, HTTP 404)" in gone.err
    nonsense = await mediad("cancel", "not-a-job", env=env)
    assert nonsense.code == 4


# --- a token-protected service ------------------------------------------------------


async def test_a_token_protected_service(
    token_service: Service, media_server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    base = token_service.base_url
    without = await mediad("ls", "--server", base, env=clean_env())
    assert without.code == 4
    assert "(unauthorized, HTTP 401)" in without.err and "--token" in without.err
    wrong = await mediad("get", media_server.url("blob.bin"), "--server", base, "--token", "x" * 20, env=clean_env())  # fmt: skip
    assert wrong.code == 4

    run = await mediad(
        "get", media_server.url("blob.bin"), "--type", "aria2", "--output", str(tmp_path / "a"),
        "--server", base, "--token", TOKEN, env=clean_env(),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert (tmp_path / "a" / "blob.bin").read_bytes() == (media_dir / "blob.bin").read_bytes()

    by_env = await mediad("ls", "--json", env=clean_env(MEDIAD_URL=base, MEDIAD_TOKEN=TOKEN))
    assert by_env.code == 0 and by_env.json()[0]["status"] == "completed"

    # Without --server or --token: the configuration's server.host, port and first token.
    config = tmp_path / "config.yaml"
    assert token_service.port is not None
    config.write_text(
        yaml.safe_dump(
            {"server": {"host": "127.0.0.1", "port": token_service.port, "api_tokens": [TOKEN]}}
        )
    )
    by_config = await mediad("show", by_env.json()[0]["jobId"], "--config", str(config), env=clean_env())  # fmt: skip
    assert by_config.code == 0, by_config.err
    assert "status    completed" in by_config.out and "blob.bin  4.0 MiB" in by_config.out


async def test_get_on_a_terminal_shows_a_live_bar(
    shared_service: Service, media_server: MediaServer, tmp_path: Path
) -> None:
    """stdout a pseudo-terminal: rich's bar, redrawn in place, then the same summary."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediad", "get", media_server.url("blob.bin", rate=4 * 1024 * 1024),
            "--type", "aria2", "--output", str(tmp_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=follower, stderr=asyncio.subprocess.PIPE,
            env=clean_env(MEDIAD_URL=shared_service.base_url, COLUMNS="100", TERM="xterm"),
            cwd=ROOT,
        )  # fmt: skip
        os.close(follower)
        follower = -1
        chunks: list[bytes] = []

        def read() -> None:
            while True:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    return
                if not data:
                    return
                chunks.append(data)

        reading = asyncio.get_running_loop().run_in_executor(None, read)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        await asyncio.wait_for(reading, 30)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, err
    assert "\x1b[" in screen  # redrawn in place: cursor control
    assert "━" in screen  # rich's bar
    assert "completed: blob.bin (4.0 MiB)" in screen
    assert (tmp_path / "blob.bin").stat().st_size == 4 * 1024 * 1024


async def test_ctrl_c_leaves_the_job_running_and_exits_130(
    shared_service: Service, media_server: MediaServer
) -> None:
    api = Api(shared_service.base_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediad", "get", media_server.url("blob.bin", stall_after=65536),
        "--type", "aria2",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=clean_env(MEDIAD_URL=shared_service.base_url), cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        job_id = re.fullmatch(r"job (\S+) \(aria2\)\n", first)[1]  # type: ignore[index]
        await api.wait_status(job_id, "running")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 130
        assert f"interrupted; job {job_id} goes on" in err.decode()
        assert (await api.job(job_id))["status"] == "running"
        status, _ = await api.request("POST", f"/downloads/{job_id}/cancel")
        assert status == 200
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api.close()


async def test_a_job_deleted_while_followed_is_noticed_without_an_event(
    idle_service: Service, media_server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete sends no event: with nothing heard for IDLE_CHECK_S, `get` asks over REST."""
    monkeypatch.setattr(client_following, "IDLE_CHECK_S", 0.2)
    api = Api(idle_service.base_url)
    client = client_cli.Client(idle_service.base_url, None)
    subscribed = asyncio.Event()

    class Watch(client_cli.Display):
        def job(self, job: Any) -> None:
            subscribed.set()

    try:
        job_id = (await api.submit(media_server.url("video.mp4")))["jobId"]
        following = asyncio.ensure_future(client_cli.follow(client, job_id, Watch()))
        await asyncio.wait_for(subscribed.wait(), 30)
        assert (await api.request("DELETE", f"/downloads/{job_id}"))[0] == 204
        with pytest.raises(client_cli.ClientError) as deleted:
            await asyncio.wait_for(following, 30)
        assert deleted.value.exit_code == client_cli.EXIT_CANCELLED
    finally:
        await client.close()
        await api.close()
