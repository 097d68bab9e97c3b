"""The pure parts of notifications: targets from the config, who hears of what, the
signature, the retry schedule; and the webhook resolver's policy check."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mediad import config as configuration
from mediad import inputs
from mediad.errors import BadRequest, ConfigError
from mediad.models import JobType
from mediad.netpolicy import NetPolicy
from mediad.notify import targets as t
from mediad.notify.sender import PolicyResolver, Refused

HOOK = {"name": "hook", "url": "https://example.com/hook", "secret": "s3cret"}
PHONE = {"name": "phone", "apprise": "ntfy://ntfy.example.com/mediad", "events": ["failed"]}
QUIET = {"name": "quiet.one", "url": "http://example.com/q", "default": False}


def build(*targets: dict[str, object], env: dict[str, str] | None = None) -> configuration.Config:
    return configuration.build({"notify": list(targets)}, env or {})


def test_targets_from_the_config() -> None:
    c = build(HOOK, PHONE, QUIET)
    hook, phone, quiet = c.notify
    assert (hook.kind, hook.events, hook.default, hook.secret) == (
        "webhook", ("completed", "failed"), True, "s3cret"
    )  # fmt: skip
    assert (phone.kind, phone.events, phone.apprise) == (
        "apprise", ("failed",), "ntfy://ntfy.example.com/mediad"
    )  # fmt: skip
    assert quiet.default is False
    assert hook.to_api() == {
        "name": "hook", "kind": "webhook", "events": ["completed", "failed"], "default": True
    }  # fmt: skip
    assert configuration.build({}).notify == ()


@pytest.mark.parametrize(
    ("targets", "key"),
    [
        ([{"name": "a"}], "notify.a"),  # neither url nor apprise
        ([{"name": "a", "url": "https://x/", "apprise": "json://x/"}], "notify.a"),
        ([{"name": "a", "url": "ftp://x/"}], "notify.a.url"),
        ([{"name": "a", "url": "https:///nohost"}], "notify.a.url"),
        ([{"name": "a", "apprise": "not a url"}], "notify.a.apprise"),
        ([{"name": "a", "apprise": "json://x/", "secret": "s"}], "notify.a.secret"),
        ([{"name": "-a", "url": "https://x/"}], "notify[0].name"),
        ([{"name": "a" * 65, "url": "https://x/"}], "notify[0].name"),
        ([{"name": "a", "url": "https://x/", "events": ["done"]}], "notify.a.events"),
        ([{"name": "a", "url": "https://x/", "events": []}], "notify.a.events"),
        ([{"name": "a", "url": "https://x/", "default": "maybe"}], "notify.a.default"),
        ([{"name": "a", "url": "https://x/", "colour": "red"}], "notify[0].colour"),
        ([HOOK, HOOK], "notify"),
        (["https://x/"], "notify[0]"),
    ],
)
def test_bad_targets_name_their_key(targets: list[object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configuration.build({"notify": targets}, {})
    assert caught.value.key == key


def test_a_mapping_is_not_a_list_of_targets() -> None:
    with pytest.raises(ConfigError, match="list of targets"):
        configuration.build({"notify": {"name": "a"}}, {})


def test_secrets_and_urls_come_from_the_environment() -> None:
    env = {
        "MEDIAD_NOTIFY_QUIET_ONE_SECRET": "from-env",
        "MEDIAD_NOTIFY_HOOK_URL": "https://other.example/hook",
    }
    c = build(HOOK, QUIET, env=env)
    assert c.notify[0].url == "https://other.example/hook" and c.notify[0].secret == "s3cret"
    assert c.notify[1].secret == "from-env"
    assert t.env_prefix("quiet.one") == "MEDIAD_NOTIFY_QUIET_ONE_"
    # The generic MEDIAD_<SECTION>_<KEY> overrides leave the list alone.
    assert configuration.load(env={"MEDIAD_NOTIFY_X_SECRET": "s"}).notify == ()


def test_notifications_section_and_replace_keep_the_targets() -> None:
    c = configuration.build({"notify": [HOOK], "notifications": {"give_up_after_s": 60}}, {})
    assert c.notifications.give_up_after_s == 60 and c.notifications.timeout_s == 10
    again = configuration.replace(c, queue={"concurrency": 2})
    assert again.notify == c.notify and again.queue.concurrency == 2
    assert configuration.replace(c, notify=[PHONE]).notify[0].name == "phone"
    with pytest.raises(ConfigError):
        configuration.build({"notifications": {"give_up_after_s": 0}}, {})
    with pytest.raises(ConfigError):
        configuration.build({"notifications": {"retry_backoff_s": 5, "retry_max_s": 1}}, {})


def test_who_hears_of_what() -> None:
    targets = build(HOOK, PHONE, QUIET).notify
    names = lambda found: [x.name for x in found]  # noqa: E731
    assert names(t.chosen(targets, None, "completed")) == ["hook"]  # defaults listening
    assert names(t.chosen(targets, None, "failed")) == ["hook", "phone"]
    assert names(t.chosen(targets, ["quiet.one"], "completed")) == ["quiet.one"]
    assert names(t.chosen(targets, ["phone"], "completed")) == []  # it hears failed only
    assert names(t.chosen(targets, [], "failed")) == []
    assert names(t.chosen(targets, None, "subscription.new")) == []
    assert t.unknown_names(targets, ["hook", "x", "y"]) == ["x", "y"]


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event":"completed"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert t.sign("s3cret", body) == f"sha256={expected}"
    assert t.verify("s3cret", body, f"sha256={expected}")
    assert not t.verify("s3cret", body + b" ", f"sha256={expected}")
    assert not t.verify("other", body, f"sha256={expected}")
    assert not t.verify("s3cret", body, None)


def test_the_retry_schedule_doubles_up_to_its_cap() -> None:
    delays = [t.retry_delay_s(n, 2.0, 600.0) for n in range(1, 12)]
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert delays[-1] == 600.0 and delays == sorted(delays)
    assert t.retry_delay_s(10_000, 2.0, 600.0) == 600.0  # no overflow, however many


def test_apprise_messages_are_short_and_human() -> None:
    job = {"jobId": "j", "url": "https://x/a.mp4", "filename": "a.mp4", "size": 5 * 2**20}
    assert t.apprise_message("completed", job, None) == (
        "mediad: download completed", "a.mp4 (5.0 MiB)"
    )  # fmt: skip
    failed = {**job, "errorCode": "not_found", "errorMessage": "404"}
    assert t.apprise_message("failed", failed, None)[1] == "a.mp4: not_found: 404"
    assert t.apprise_message("test", None, None)[0] == "mediad: test"
    assert "https://c/" in t.apprise_message("subscription.new", None, {"url": "https://c/"})[1]


def test_the_notify_option_is_a_list_of_names_for_every_type() -> None:
    for job_type in JobType:
        assert inputs.parse_options(job_type, {"notify": ["a", "b.c"]}) == {"notify": ["a", "b.c"]}
        assert "notify" in inputs.option_names(job_type)
    for bad in ("a", ["a", "a"], ["http://x/"], [1], ["a"] * 21):
        with pytest.raises(BadRequest):
            inputs.parse_options(JobType.ARIA2, {"notify": bad})


async def test_the_webhook_resolver_refuses_what_the_policy_refuses() -> None:
    with pytest.raises(Refused, match="loopback"):
        await PolicyResolver(NetPolicy()).resolve("localhost", 80)
    found = await PolicyResolver(NetPolicy(allow_private=True)).resolve("localhost", 80)
    assert found and all(r["host"] in ("127.0.0.1", "::1") for r in found)
    assert {r["hostname"] for r in found} == {"localhost"} and found[0]["port"] == 80
