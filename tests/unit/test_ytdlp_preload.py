"""run_ytdlp.preload: yt-dlp's start-up done once in the worker changes nothing a job sees.

Each check runs in a fresh interpreter: preload freezes the garbage collector and patches
yt-dlp's module, which this test process should not inherit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHECK = textwrap.dedent(
    """
    import sys
    import tempfile
    import yt_dlp
    from yt_dlp.extractor import GenericIE, YoutubeIE
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    def chosen(**params):
        return list(yt_dlp.YoutubeDL({"quiet": True, **params})._ies.items())

    before = chosen(), chosen(allowed_extractors=["generic"])
    from pathlib import Path
    from yt_dlp import globals as yt_globals
    from mediad.worker import run_ytdlp

    comm = Path("/proc/self/comm").read_text()
    cli, plugin_dirs = yt_globals.IN_CLI.value, yt_globals.plugin_dirs.value
    location = FFmpegPostProcessor._ffmpeg_location.get()

    run_ytdlp.preload(sys.argv[1] or None)
    warmed = []
    run_ytdlp._warm_up = warmed.append
    run_ytdlp.preload(sys.argv[1] or None)  # done once: a second call does nothing
    assert warmed == []
    after = chosen(), chosen(allowed_extractors=["generic"])
    assert before == after, "the same extractors, in the same order"
    assert yt_dlp.YoutubeDL.add_default_info_extractors.__wrapped__, "the table built ahead"
    first, second = yt_dlp.YoutubeDL({"quiet": True}), yt_dlp.YoutubeDL({"quiet": True})
    assert first._ies == second._ies and first._ies is not second._ies, "a copy for each"
    # The warm-up job ran and put back what yt-dlp's command line sets process-wide.
    assert Path("/proc/self/comm").read_text() == comm, "the process name"
    assert (yt_globals.IN_CLI.value, yt_globals.plugin_dirs.value) == (cli, plugin_dirs)
    assert FFmpegPostProcessor._ffmpeg_location.get() == location
    # What a job compiles (its options, its file name) the warm-up job compiled already.
    import re

    assert run_ytdlp.warmed_up
    cached = set(re._cache)
    args = run_ytdlp.build_args("http://127.0.0.1:9/a.mp4", {}, Path.cwd(), sys.argv[1] or None)
    with yt_dlp.YoutubeDL(yt_dlp.parse_options(args).ydl_opts) as ydl:
        ydl.prepare_filename({"id": "a", "title": "A title", "ext": "mp4", "url": args[-1]})
    assert set(re._cache) <= cached, "nothing compiled again"
    assert run_ytdlp.warm_job(sys.argv[1] or None), "a warm-up job completes again"
    assert list(Path(tempfile.gettempdir()).iterdir()) == [], "its folder is removed"
    # A stage without print templates prints nothing and builds nothing; one with them
    # prints as before; the video stage (whose result yt-dlp uses) is left alone.
    printed = []
    ydl = yt_dlp.YoutubeDL({"quiet": True, "forceprint": {"pre_process": ["%(id)s"]}})
    ydl.to_stdout = printed.append
    info = {"id": "abc", "title": "t", "ext": "mp4", "url": "http://a.example/x"}
    assert ydl._forceprint("post_process", info) is None and printed == []
    ydl._forceprint("pre_process", info)
    assert printed == ["abc"]
    assert ydl._forceprint("video", info)["id"] == "abc"
    assert len(after[1]) == 1 and len(after[0]) > 1000
    assert "_VALID_URL_RE" in YoutubeIE.__dict__, "patterns compiled ahead"
    assert "_VALID_URL_RE" in GenericIE.__dict__
    assert YoutubeIE.suitable("https://www.youtube.com/watch?v=BaW_jenozKc")
    assert not YoutubeIE.suitable("http://127.0.0.1/a.mp4")
    # Built ahead, handed out once per process, then built afresh.
    import ssl
    from yt_dlp.networking.common import make_ssl_context as ssl_context
    from yt_dlp.options import create_parser

    first = ssl_context(verify=True, legacy_support=False, use_certifi=True)
    second = ssl_context(verify=True, legacy_support=False, use_certifi=True)
    assert first is not second
    for context in (first, second):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] > 0
    unchecked = ssl_context(verify=False, legacy_support=False, use_certifi=True)
    assert unchecked.verify_mode == ssl.CERT_NONE
    assert create_parser() is not create_parser()
    a = yt_dlp.parse_options(["-f", "ba", "--", "http://a.example/x"]).ydl_opts
    b = yt_dlp.parse_options(["--", "http://a.example/x"]).ydl_opts
    assert a["format"] == "ba" and b["format"] is None, "no option passes to the next"
    if sys.argv[1]:
        assert FFmpegPostProcessor._version_cache.get(sys.argv[1]), "ffmpeg probed"
    print("ok")
    """
)


@pytest.mark.parametrize("with_ffmpeg", [True, False])
def test_preload_keeps_what_yt_dlp_chooses(with_ffmpeg: bool, tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg") if with_ffmpeg else ""
    if with_ffmpeg and not ffmpeg:
        pytest.skip("no ffmpeg")
    out = subprocess.run(
        [sys.executable, "-c", CHECK, ffmpeg or ""],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the warm-up job's folder goes here
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


PICK = textwrap.dedent(
    """
    import threading
    import yt_dlp
    from yt_dlp import YoutubeDL

    URLS = [
        "https://www.youtube.com/watch?v=BaW_jenozKc",
        "https://www.youtube.com/playlist?list=PLwiyx1dc3P2JR9N8gQaQN_BCvlSlap7re",
        "https://vimeo.com/56015672",
        "https://soundcloud.com/ethmusic/lostin-powers-she-so-heavy",
        "https://www.twitch.tv/shroud",  # extractors with a suitable() of their own
        "https://www.bbc.co.uk/news/world-europe-12345678",
        "https://www.youtube.com/@SomeChannel/videos",
        "https://x.com/someone/status/1234567890123456789",
        "https://cdn.example.com/live/stream.m3u8",
        "http://127.0.0.1:9/a.mp4",
        "not a url at all",
    ]

    def searched(url):  # what yt-dlp's own search in extract_info finds first
        ydl = YoutubeDL({"quiet": True})
        return next((key for key, ie in ydl._ies.items() if ie.suitable(url)), None)

    expected = {url: searched(url) for url in URLS}
    plain = YoutubeDL({"quiet": True})._ies
    from mediad.worker import run_ytdlp

    run_ytdlp.preload(None)
    for url in URLS:
        run_ytdlp.pick_extractor(["--no-playlist", "--", url])
        assert run_ytdlp._picked == (url, expected[url]), (url, run_ytdlp._picked)
    run_ytdlp.pick_extractor(["http://127.0.0.1:9/a.mp4"])  # no "--": nothing picked
    assert run_ytdlp._picked is None
    # A pattern that backtracks for ever on a URL: the pick gives up, picks nothing, and
    # leaves no alarm behind.
    import re
    import signal

    steps, places = list(run_ytdlp._pick_steps), run_ytdlp._pick_places[:]
    run_ytdlp._pick_steps.insert(0, re.compile(r"(?:a+)+b"))
    run_ytdlp._pick_places.insert(0, 0)
    run_ytdlp.pick_extractor(["--", "a" * 64])
    assert run_ytdlp._picked is None
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    run_ytdlp._pick_steps[:], run_ytdlp._pick_places[:] = steps, places
    run_ytdlp.pick_extractor(["--", URLS[0]])
    assert run_ytdlp._picked == (URLS[0], expected[URLS[0]])

    # The table reads as the dict it replaces, and becomes one only when iterated.
    ies = YoutubeDL({"quiet": True})._ies
    assert isinstance(ies, run_ytdlp.DefaultExtractors) and not ies.changed
    assert "Youtube" in ies and ies["Youtube"] is plain["Youtube"] and "Nope" not in ies
    assert ies._whole is None, "lookups leave the shared table alone"
    assert list(ies.items()) == list(plain.items()) and ies == plain
    copy = dict(plain)
    ies["Generic"] = copy["Generic"] = ies["Generic"]()  # an instance at its own key
    assert not ies.changed
    ies["Zzz"] = copy["Zzz"] = plain["Youtube"]  # a new key goes last
    del ies["Vimeo"], copy["Vimeo"]
    assert ies.changed and list(ies.items()) == list(copy.items())
    fresh = YoutubeDL({"quiet": True})._ies
    fresh["Youtube"] = plain["Vimeo"]  # another extractor at a key: changed, before a search
    assert fresh.changed and fresh._whole is None and fresh["Youtube"] is plain["Vimeo"]
    assert list(YoutubeDL({"quiet": True, "allowed_extractors": ["generic"]})._ies) == [
        "Generic"
    ]

    # A job's YoutubeDL takes the picked extractor for that URL without a search.
    server = run_ytdlp._warm_responder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"

    def extracted(pick, asked=None):
        run_ytdlp._picked = None
        if pick:
            run_ytdlp.pick_extractor(["--", pick])
        ydl = YoutubeDL({"quiet": True})
        info = ydl.extract_info(asked or url, download=False)
        keep = ("id", "title", "extractor_key", "url", "ext")
        return {k: info[k] for k in keep}, ydl._ies._whole is None

    searched_info, untouched = extracted(None)
    assert searched_info["extractor_key"] == "Generic" and not untouched, "searched"
    assert extracted(url) == (searched_info, True), "the same, without a search"
    assert extracted(url + "?other")[1] is False, "another URL: searched"
    ydl = YoutubeDL({"quiet": True})
    run_ytdlp.pick_extractor(["--", url])
    ydl._ies["Youtube"] = plain["Vimeo"]  # a table changed after the pick: searched
    assert ydl.extract_info(url, download=False)["extractor_key"] == "Generic"
    assert ydl._ies._whole is not None
    print("ok")
    """
)


def test_the_extractor_is_picked_before_the_fork_as_yt_dlp_would(tmp_path: Path) -> None:
    """``pick_extractor`` (run by the fork server before each fork) finds what yt-dlp's
    own search finds; a job's YoutubeDL then takes it without touching ~1,900 classes,
    and searches as before for any other URL or a changed table; ``DefaultExtractors``
    reads and writes as the dict it replaces."""
    out = subprocess.run(
        [sys.executable, "-c", PICK],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
