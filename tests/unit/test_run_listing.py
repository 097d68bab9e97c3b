"""mediad.worker.run_listing: an entry (URL and key) from each shape of yt-dlp's flat
listing, the lines it prints, and the arguments it is run with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mediad import wire
from mediad.worker import run_listing
from mediad.worker.run_listing import Listing, entry_of, parse_line

# What yt-dlp 2025+ prints for an RSS feed (the generic extractor) with the fields
# run_listing asks for: an item with a guid (smuggled into the URL) and one without.
FEED_WITH_GUID = (
    'mediad-entry {"url": "http://127.0.0.1:8765/a.mp4#__youtubedl_smuggle=%7B%22force_videoid'
    '%22%3A+%22guid-1%22%7D", "webpage_url": "http://127.0.0.1:8765/a.mp4#__youtubedl_smuggle='
    '%7B%22force_videoid%22%3A+%22guid-1%22%7D", "extractor_key": "Generic", "title": "One"}'
)
FEED_WITHOUT_GUID = (
    'mediad-entry {"url": "http://127.0.0.1:8765/b.mp4", "webpage_url":'
    ' "http://127.0.0.1:8765/b.mp4", "extractor_key": "Generic", "title": "Two"}'
)
FEED_PLAYLIST = 'mediad-playlist {"title": "Feed T", "extractor_key": "Generic"}'


def of_line(line: str) -> wire.ListedEntry | None:
    return entry_of(json.loads(line.partition(" ")[2]))


def test_a_feed_item_with_a_guid_is_known_by_it_and_downloaded_without_the_note() -> None:
    assert of_line(FEED_WITH_GUID) == wire.ListedEntry(
        "Generic", "guid-1", "http://127.0.0.1:8765/a.mp4", "One"
    )


def test_a_feed_item_without_a_guid_is_known_by_its_url() -> None:
    url = "http://127.0.0.1:8765/b.mp4"
    assert of_line(FEED_WITHOUT_GUID) == wire.ListedEntry("Generic", url, url, "Two")


def test_white_space_around_a_feed_item_s_link_is_taken_off() -> None:
    """Bug: a pretty-printed feed's ``<link>`` (or enclosure) has white space around the
    URL and yt-dlp prints it so: the item was left out (leading space) or its job's URL
    and key kept the trailing space. These are yt-dlp's lines for such a feed."""
    lines = [
        'mediad-entry {"url": "\\n   http://127.0.0.1:8765/a.mp4\\n", "webpage_url": "\\n   '
        'http://127.0.0.1:8765/a.mp4\\n", "extractor_key": "Generic", "title": "One"}',
        'mediad-entry {"url": "http://127.0.0.1:8765/b.mp4   ", "webpage_url": "http://127.0.0.1'
        ':8765/b.mp4   ", "extractor_key": "Generic", "title": "Two"}',
        'mediad-entry {"url": " http://127.0.0.1:8765/c.mp4 ", "webpage_url": " http://127.0.0.1'
        ':8765/c.mp4 ", "extractor_key": "Generic", "title": "Three"}',
    ]
    for line, name in zip(lines, "abc", strict=True):
        url = f"http://127.0.0.1:8765/{name}.mp4"
        entry = of_line(line)
        assert entry is not None and entry.url == url and entry.entry_id == url, line
    assert entry_of({"url": "  ", "webpage_url": "https://a.example/1"}).url == (  # type: ignore[union-attr]
        "https://a.example/1"
    )


def test_an_entry_of_a_named_extractor_is_known_by_its_ie_key_and_id() -> None:
    # A channel's flat entry: the playlist's extractor (YoutubeTab) is extractor_key.
    info = {"id": "dQw4w9WgXcQ", "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "ie_key": "Youtube", "extractor_key": "YoutubeTab", "title": "Never"}  # fmt: skip
    assert entry_of(info) == wire.ListedEntry("Youtube", "dQw4w9WgXcQ", info["url"], "Never")


def test_without_ie_key_the_extractor_key_and_without_either_url() -> None:
    assert entry_of({"id": "7", "url": "https://v.example/7", "extractor_key": "Vimeo"}) == (
        wire.ListedEntry("Vimeo", "7", "https://v.example/7")
    )
    assert entry_of({"id": "7", "url": "https://v.example/7"}) == (
        wire.ListedEntry("url", "7", "https://v.example/7")
    )


def test_a_numeric_id_is_its_text_and_an_empty_one_falls_back_to_the_url() -> None:
    assert entry_of({"id": 12345, "url": "https://a.example/x"}).entry_id == "12345"  # type: ignore[union-attr]
    assert entry_of({"id": "", "url": "https://a.example/x"}).entry_id == "https://a.example/x"  # type: ignore[union-attr]
    assert entry_of({"id": None, "url": "https://a.example/x"}).entry_id == "https://a.example/x"  # type: ignore[union-attr]
    assert entry_of({"id": ["x"], "url": "https://a.example/x"}).entry_id == "https://a.example/x"  # type: ignore[union-attr]


def test_an_id_beats_the_smuggled_guid_but_the_note_still_goes() -> None:
    info = json.loads(FEED_WITH_GUID.partition(" ")[2]) | {"id": "real"}
    assert entry_of(info) == wire.ListedEntry(
        "Generic", "real", "http://127.0.0.1:8765/a.mp4", "One"
    )


def test_url_is_preferred_to_webpage_url() -> None:
    """A flat entry inherits the playlist's ``webpage_url`` when it has none of its own:
    the entry's own ``url`` is what names it."""
    info = {"id": "1", "url": "https://a.example/v/1", "webpage_url": "https://a.example/list"}
    assert entry_of(info).url == "https://a.example/v/1"  # type: ignore[union-attr]


def test_webpage_url_when_there_is_no_url() -> None:
    for url in (None, ""):
        info = {"id": "1", "url": url, "webpage_url": "https://a.example/v/1"}
        assert entry_of(info).url == "https://a.example/v/1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "info",
    [
        None, [], "https://a.example/x", {}, {"id": "1"}, {"id": "1", "url": 5},
        {"id": "1", "url": "dQw4w9WgXcQ", "ie_key": "Youtube"},  # a bare id, not a URL
        {"id": "1", "url": "ftp://a.example/x"},
        {"id": "1", "url": "javascript:alert(1)"},
        {"id": "1", "url": "//a.example/x"},
        {"id": "1", "webpage_url": "file:///etc/passwd"},
    ],
)  # fmt: skip
def test_no_entry_without_an_http_url(info: Any) -> None:
    assert entry_of(info) is None


def test_an_entry_s_fields_fit_the_wire() -> None:
    info = {"id": "i" * 100, "url": "https://a.example/x", "ie_key": "k" * 100, "title": "t" * 999}
    e = entry_of(info)
    assert e is not None
    assert len(e.extractor) == 64 and len(e.title or "") == wire.MAX_TITLE
    listed = wire.ListedEvent("6f1c2b8a-9d3e-4f5a-8b7c-1d2e3f4a5b6c", 1, (e,))
    assert wire.parse_listed(listed.encode()) == listed


def test_long_urls_that_differ_only_at_the_end_are_two_entries() -> None:
    """Bug: the URL fallback was cut to 256 characters, so feed items without a guid
    whose (long) URLs shared that start were one entry — the later ones never
    downloaded. A key longer than the wire allows is now its digest."""
    base = "https://dts.example/redirect.mp3/track/" + "p" * 300
    a = entry_of({"url": base + "/ep1.mp3", "extractor_key": "Generic"})
    b = entry_of({"url": base + "/ep2.mp3", "extractor_key": "Generic"})
    assert a is not None and b is not None
    assert a.entry_id != b.entry_id
    assert a.entry_id.startswith("sha256:") and len(a.entry_id) <= wire.MAX_ENTRY_KEY
    assert a == entry_of({"url": base + "/ep1.mp3", "extractor_key": "Generic"})  # stable
    long_id = entry_of({"id": "x" * 300 + "1", "url": "https://a.example/1"})
    other_id = entry_of({"id": "x" * 300 + "2", "url": "https://a.example/1"})
    assert long_id is not None and other_id is not None and long_id.entry_id != other_id.entry_id
    short = entry_of({"id": "x" * wire.MAX_ENTRY_KEY, "url": "https://a.example/1"})
    assert short is not None and short.entry_id == "x" * wire.MAX_ENTRY_KEY  # kept as it is


def test_a_url_longer_than_the_wire_takes_is_no_entry_not_a_cut_one() -> None:
    """Bug: a URL over 2048 characters was cut there, and the job made of it fetched
    another resource (or none)."""
    longest = "https://a.example/" + "u" * (wire.MAX_ENTRY_URL - 18)
    assert entry_of({"id": "1", "url": longest}).url == longest  # type: ignore[union-attr]
    assert entry_of({"id": "1", "url": longest + "u"}) is None
    # The smuggled note is taken off first: what is left may be long, up to the bound.
    note = "#__youtubedl_smuggle=%7B%22force_videoid%22%3A+%22g%22%7D"
    e = entry_of({"url": longest + note, "extractor_key": "Generic"})
    assert e is not None and e.url == longest and e.entry_id == "g"


@pytest.mark.parametrize(
    "fragment",
    ["#__youtubedl_smuggle=notjson", "#__youtubedl_smuggle=%5B1%5D", "#__youtubedl_smuggle=",
     "#__youtubedl_smuggle=%7B%22force_videoid%22%3A+5%7D", "#chapter-2"],
)  # fmt: skip
def test_a_fragment_that_is_no_smuggled_guid_stays_in_the_url(fragment: str) -> None:
    url = "https://a.example/x" + fragment
    e = entry_of({"url": url, "extractor_key": "Generic"})
    assert e is not None and e.url == url and e.entry_id == url


# -- the lines ------------------------------------------------------------------------------


def test_parse_line_takes_entries_and_the_title_and_leaves_the_rest() -> None:
    listing = Listing()
    lines = [FEED_PLAYLIST, FEED_WITH_GUID, FEED_WITHOUT_GUID, "[generic] Extracting URL",
             "ERROR: something", 'mediad-entry {"url": "ftp://x/y"}', "mediad-entry {not json",
             'mediad-entry ["x"]', 'mediad-playlist ["x"]']  # fmt: skip
    ours = [parse_line(line, listing) for line in lines]
    assert ours == [True, True, True, False, False, True, True, True, True]
    assert listing.title is None  # the last playlist line named none
    assert [e.entry_id for e in listing.entries] == ["guid-1", "http://127.0.0.1:8765/b.mp4"]
    assert listing.skipped == 3


def test_the_playlist_title_is_cut() -> None:
    listing = Listing()
    parse_line("mediad-playlist " + json.dumps({"title": "t" * 1000}), listing)
    assert listing.title == "t" * 300


def test_the_listing_is_flat_bounded_and_ends_its_options() -> None:
    args = run_listing.build_args("https://a.example/-x", 7, "http://127.0.0.1:1")
    assert "--flat-playlist" in args and "--ignore-config" in args
    assert args[args.index("--playlist-end") + 1] == "7"
    assert args[args.index("--proxy") + 1] == "http://127.0.0.1:1"
    assert args[-2:] == ["--", "https://a.example/-x"]
    assert "--proxy" not in run_listing.build_args("https://a.example/", 7, None)
