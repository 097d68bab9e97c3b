"""mediad.subs_web's pure input checks: every field of ``POST /subscriptions`` and
``PATCH /subscriptions/{id}``, with the code the contract (openapi.yaml) documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from mediad import subs_web
from mediad.config import Config
from mediad.errors import BadRequest
from tests.support.fakes import make_config

URL = "https://www.youtube.com/@example/videos"
MIN = 120  # subscriptions.min_interval_s in these tests (the default is 60)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, subscriptions={"min_interval_s": MIN})


def refused(func: Any, body: Any, config: Config) -> str:
    """The code of the 400 ``func`` answers ``body`` with."""
    with pytest.raises(BadRequest) as info:
        func(body, config)
    assert info.value.status == 400
    assert info.value.message and "\n" not in info.value.message
    return info.value.code


def new(**fields: Any) -> dict[str, Any]:
    return {"url": URL, "intervalS": 3600, **fields}


# -- POST: what is taken --------------------------------------------------------------------


def test_a_minimal_subscription_gets_the_documented_defaults(config: Config) -> None:
    assert subs_web.parse_new(new(), config) == {
        "url": URL, "kind": "ytdlp", "options": {}, "interval_s": 3600,
        "max_items": 100, "backfill": True, "enabled": True,
    }  # fmt: skip


def test_every_field_given(config: Config) -> None:
    body = new(type="ytdlp", options={"audioOnly": True, "format": "best"}, intervalS=MIN,
               maxItems=1000, backfill=False, enabled=False)  # fmt: skip
    assert subs_web.parse_new(body, config) == {
        "url": URL, "kind": "ytdlp", "options": {"audioOnly": True, "format": "best"},
        "interval_s": MIN, "max_items": 1000, "backfill": False, "enabled": False,
    }  # fmt: skip


@pytest.mark.parametrize("interval", [MIN, MIN + 1, subs_web.MAX_INTERVAL_S])
def test_interval_bounds_taken(config: Config, interval: int) -> None:
    assert subs_web.parse_new(new(intervalS=interval), config)["interval_s"] == interval


@pytest.mark.parametrize("n", [1, 2, 999, subs_web.MAX_ITEMS])
def test_max_items_bounds_taken(config: Config, n: int) -> None:
    assert subs_web.parse_new(new(maxItems=n), config)["max_items"] == n


def test_options_null_is_none_and_type_null_is_ytdlp(config: Config) -> None:
    parsed = subs_web.parse_new(new(options=None, type=None), config)
    assert parsed["options"] == {} and parsed["kind"] == "ytdlp"


def test_audio_format_implies_audio_only_as_for_a_download(config: Config) -> None:
    parsed = subs_web.parse_new(new(options={"audioFormat": "mp3"}), config)
    assert parsed["options"] == {"audioFormat": "mp3", "audioOnly": True}


def test_the_url_is_taken_stripped(config: Config) -> None:
    assert subs_web.parse_new(new(url=f"  {URL}\n"), config)["url"] == URL


def test_the_minimum_interval_is_the_configured_one(tmp_path: Path) -> None:
    low = make_config(tmp_path, subscriptions={"min_interval_s": 1})
    assert subs_web.parse_new(new(intervalS=1), low)["interval_s"] == 1
    default = make_config(tmp_path / "d")
    assert default.subscriptions.min_interval_s == 60
    assert subs_web.parse_new(new(intervalS=60), default)["interval_s"] == 60
    assert refused(subs_web.parse_new, new(intervalS=59), default) == "invalid_body"


# -- POST: what is refused, and with which code ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param([], "invalid_body", id="a list"),
        pytest.param("x", "invalid_body", id="a string"),
        pytest.param(None, "invalid_body", id="null"),
        pytest.param({"intervalS": 3600}, "invalid_url", id="no url"),
        pytest.param({"url": URL}, "invalid_body", id="no intervalS"),
        pytest.param(new(url=""), "invalid_url", id="empty url"),
        pytest.param(new(url=7), "invalid_url", id="url a number"),
        pytest.param(new(url="https://a.example/a b"), "invalid_url", id="url with a space"),
        pytest.param(new(url="ftp://a.example/feed"), "unsupported_scheme", id="ftp"),
        pytest.param(new(url="file:///etc/passwd"), "unsupported_scheme", id="file"),
        pytest.param(new(url="https://"), "invalid_url", id="no host"),
        pytest.param(new(url="https://a.example:99999/"), "invalid_url", id="bad port"),
        pytest.param(new(type="twitter"), "invalid_type", id="twitter (not yet)"),
        pytest.param(new(type="aria2"), "invalid_type", id="aria2"),
        pytest.param(new(type="YTDLP"), "invalid_type", id="case"),
        pytest.param(new(type=1), "invalid_type", id="type a number"),
        pytest.param(new(type=["ytdlp"]), "invalid_type", id="type a list"),
        pytest.param(new(intervalS=MIN - 1), "invalid_body", id="interval below the minimum"),
        pytest.param(new(intervalS=0), "invalid_body", id="interval 0"),
        pytest.param(new(intervalS=-3600), "invalid_body", id="interval negative"),
        pytest.param(new(intervalS=subs_web.MAX_INTERVAL_S + 1), "invalid_body",
                     id="interval above the maximum"),
        pytest.param(new(intervalS=3600.0), "invalid_body", id="interval a float"),
        pytest.param(new(intervalS="3600"), "invalid_body", id="interval a string"),
        pytest.param(new(intervalS=None), "invalid_body", id="interval null"),
        pytest.param(new(intervalS=True), "invalid_body", id="interval a bool"),
        pytest.param(new(maxItems=0), "invalid_body", id="maxItems 0"),
        pytest.param(new(maxItems=1001), "invalid_body", id="maxItems 1001"),
        pytest.param(new(maxItems=True), "invalid_body", id="maxItems true (an int in Python)"),
        pytest.param(new(maxItems=10.0), "invalid_body", id="maxItems a float"),
        pytest.param(new(maxItems=None), "invalid_body", id="maxItems null"),
        pytest.param(new(backfill=1), "invalid_body", id="backfill 1"),
        pytest.param(new(backfill=0), "invalid_body", id="backfill 0"),
        pytest.param(new(backfill="true"), "invalid_body", id="backfill a string"),
        pytest.param(new(backfill=None), "invalid_body", id="backfill null"),
        pytest.param(new(enabled=1), "invalid_body", id="enabled 1"),
        pytest.param(new(enabled="false"), "invalid_body", id="enabled a string"),
        pytest.param(new(enabled=None), "invalid_body", id="enabled null"),
        pytest.param(new(options={"playlist": True}), "invalid_options", id="options.playlist"),
        pytest.param(new(options={"playlist": False}), "invalid_options",
                     id="options.playlist false"),
        pytest.param(new(options={"maxItems": 5}), "invalid_options", id="options.maxItems"),
        pytest.param(new(options={"container": "mp4"}), "invalid_options",
                     id="an ffmpeg option"),
        pytest.param(new(options={"maxTweets": 5}), "invalid_options", id="a twitter option"),
        pytest.param(new(options={"nope": 1}), "invalid_options", id="an unknown option"),
        pytest.param(new(options={"audioOnly": 1}), "invalid_options", id="audioOnly 1"),
        pytest.param(new(options={"audioFormat": "exe"}), "invalid_options",
                     id="audioFormat unknown"),
        pytest.param(new(options=[]), "invalid_options", id="options a list"),
        pytest.param(new(options="audioOnly"), "invalid_options", id="options a string"),
        pytest.param(new(title="x"), "unknown_field", id="title (read-only)"),
        pytest.param(new(seen=0), "unknown_field", id="seen (read-only)"),
        pytest.param(new(subscriptionId="x"), "unknown_field", id="subscriptionId"),
        pytest.param(new(interval_s=3600), "unknown_field", id="the column's name"),
        pytest.param({"url": URL, "intervalS": 3600, "": 1}, "unknown_field", id="empty key"),
    ],
)  # fmt: skip
def test_a_bad_new_subscription_is_refused_with_its_code(
    config: Config, body: Any, code: str
) -> None:
    assert refused(subs_web.parse_new, body, config) == code


def test_unknown_fields_are_refused_before_the_other_checks(config: Config) -> None:
    # No url, no intervalS, and an unknown field: the unknown field is what is said.
    assert refused(subs_web.parse_new, {"x": 1}, config) == "unknown_field"


def test_the_unknown_field_message_is_short_whatever_the_keys(config: Config) -> None:
    body = new(**{f"k{i}" + "x" * 5000: 1 for i in range(100)})
    with pytest.raises(BadRequest) as info:
        subs_web.parse_new(body, config)
    assert info.value.code == "unknown_field" and len(info.value.message) < 1000


def test_twitter_is_refused_saying_why(config: Config) -> None:
    with pytest.raises(BadRequest) as info:
        subs_web.parse_new(new(type="twitter"), config)
    assert info.value.code == "invalid_type" and "twitter" in info.value.message


# -- PATCH ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        ({"enabled": False}, {"enabled": False}),
        ({"enabled": True}, {"enabled": True}),
        ({"intervalS": MIN}, {"interval_s": MIN}),
        ({"intervalS": subs_web.MAX_INTERVAL_S}, {"interval_s": subs_web.MAX_INTERVAL_S}),
        ({"maxItems": 1}, {"max_items": 1}),
        ({"maxItems": 1000}, {"max_items": 1000}),
        ({"options": None}, {"options": {}}),
        ({"options": {}}, {"options": {}}),
        ({"options": {"audioOnly": True}}, {"options": {"audioOnly": True}}),
        (
            {"options": {"format": "best"}, "intervalS": 600, "maxItems": 5, "enabled": False},
            {"options": {"format": "best"}, "interval_s": 600, "max_items": 5, "enabled": False},
        ),
    ],
)
def test_a_patch_changes_only_what_it_gives(
    config: Config, body: dict[str, Any], changes: dict[str, Any]
) -> None:
    assert subs_web.parse_patch(body, config) == changes


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({}, "invalid_body", id="empty"),
        pytest.param([], "invalid_body", id="a list"),
        pytest.param(None, "invalid_body", id="null"),
        pytest.param(5, "invalid_body", id="a number"),
        pytest.param({"url": URL}, "unknown_field", id="url (not changeable)"),
        pytest.param({"type": "ytdlp"}, "unknown_field", id="type (not changeable)"),
        pytest.param({"backfill": False}, "unknown_field", id="backfill (only at creation)"),
        pytest.param({"enabled": True, "x": 1}, "unknown_field", id="an unknown field too"),
        pytest.param({"intervalS": MIN - 1}, "invalid_body", id="interval below the minimum"),
        pytest.param({"intervalS": subs_web.MAX_INTERVAL_S + 1}, "invalid_body",
                     id="interval above the maximum"),
        pytest.param({"intervalS": True}, "invalid_body", id="interval a bool"),
        pytest.param({"intervalS": None}, "invalid_body", id="interval null"),
        pytest.param({"maxItems": 0}, "invalid_body", id="maxItems 0"),
        pytest.param({"maxItems": 1001}, "invalid_body", id="maxItems 1001"),
        pytest.param({"maxItems": False}, "invalid_body", id="maxItems false"),
        pytest.param({"maxItems": "5"}, "invalid_body", id="maxItems a string"),
        pytest.param({"enabled": 0}, "invalid_body", id="enabled 0"),
        pytest.param({"enabled": 1}, "invalid_body", id="enabled 1"),
        pytest.param({"enabled": None}, "invalid_body", id="enabled null"),
        pytest.param({"enabled": "true"}, "invalid_body", id="enabled a string"),
        pytest.param({"options": {"playlist": True}}, "invalid_options", id="options.playlist"),
        pytest.param({"options": {"maxItems": 3}}, "invalid_options", id="options.maxItems"),
        pytest.param({"options": {"includeRetweets": True}}, "invalid_options",
                     id="a twitter option"),
        pytest.param({"options": 3}, "invalid_options", id="options a number"),
    ],
)  # fmt: skip
def test_a_bad_patch_is_refused_with_its_code(config: Config, body: Any, code: str) -> None:
    assert refused(subs_web.parse_patch, body, config) == code


# -- ids ------------------------------------------------------------------------------------


def test_an_id_is_a_uuid_in_any_of_its_spellings() -> None:
    u = UUID("0b9e4a6e-3c1f-4d0e-9a57-2f1f3c0e8d11")
    for text in (str(u), str(u).upper(), u.hex, "{" + str(u) + "}", f"urn:uuid:{u}"):
        assert subs_web.parse_id(text) == u


@pytest.mark.parametrize(
    "text", ["", "x", "1", "0b9e4a6e-3c1f-4d0e-9a57-2f1f3c0e8d1", "0b9e4a6e-3c1f-4d0e-9a57-"
             "2f1f3c0e8d11x", "../etc", "0b9e4a6e 3c1f 4d0e 9a57 2f1f3c0e8d11x", "é" * 32],
)  # fmt: skip
def test_anything_else_is_invalid_subscription_id(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        subs_web.parse_id(text)
    assert info.value.status == 400 and info.value.code == "invalid_subscription_id"


def test_the_codes_used_are_the_documented_ones() -> None:
    """Every code these checks answer with is in the contract's list for a 400."""
    spec = (Path(subs_web.__file__).parent / "openapi.yaml").read_text()
    documented = spec.split("BadRequest:", 1)[1].split("content:", 1)[0]
    for code in ("invalid_body", "unknown_field", "invalid_url", "unsupported_scheme",
                 "invalid_type", "invalid_options", "invalid_subscription_id"):  # fmt: skip
        assert f"`{code}`" in documented, code
