"""run_ytdlp.preload: yt-dlp's start-up done once in the worker changes nothing a job sees.

Each check runs in a fresh interpreter: preload freezes the garbage collector and patches
yt-dlp's module, which this test process should not inherit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

CHECK = textwrap.dedent(
    """
    import sys
    import yt_dlp
    from yt_dlp.extractor import GenericIE, YoutubeIE
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    def chosen(**params):
        return list(yt_dlp.YoutubeDL({"quiet": True, **params})._ies)

    before = chosen(), chosen(allowed_extractors=["generic"])
    from mediad.worker import run_ytdlp

    run_ytdlp.preload(sys.argv[1] or None)
    warmed = []
    run_ytdlp._warm_up = warmed.append
    run_ytdlp.preload(sys.argv[1] or None)  # done once: a second call does nothing
    assert warmed == []
    after = chosen(), chosen(allowed_extractors=["generic"])
    assert before == after, "the same extractors, in the same order"
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
def test_preload_keeps_what_yt_dlp_chooses(with_ffmpeg: bool) -> None:
    ffmpeg = shutil.which("ffmpeg") if with_ffmpeg else ""
    if with_ffmpeg and not ffmpeg:
        pytest.skip("no ffmpeg")
    out = subprocess.run(
        [sys.executable, "-c", CHECK, ffmpeg or ""], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
