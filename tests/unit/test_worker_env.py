from __future__ import annotations

from mediad.worker.client import tools_environment


def test_tools_get_no_secrets_and_no_way_around_the_guard() -> None:
    env = tools_environment(
        {
            "PATH": "/usr/bin",
            "MEDIAD_WORKER_TOKEN": "secret",
            "MEDIAD_WORKER_SETTINGS": '{"aria2Secret": "s"}',
            "no_proxy": "*",
            "NO_PROXY": "*",
            "HTTPS_PROXY": "http://elsewhere:3128",
        },
        "http://127.0.0.1:9",
    )
    assert env["PATH"] == "/usr/bin"
    assert not [k for k in env if k.startswith("MEDIAD_WORKER_") or k.lower() == "no_proxy"]
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert env[name] == "http://127.0.0.1:9"


def test_the_services_secrets_and_settings_stay_behind() -> None:
    env = tools_environment(
        {
            "HOME": "/root",
            "WORKER_TOKEN": "secret",
            "DATABASE_URL": "postgresql://u:p@h/d",
            "REDIS_URL": "redis://h",
            "MEDIAD_SERVER_API_TOKENS": "a,b",
            "TWMD_STANDIN_MEDIA_URL": "http://127.0.0.1:1",
        },
        "http://127.0.0.1:9",
    )
    assert {k for k in env if not k.lower().endswith("_proxy")} == {
        "HOME",
        "TWMD_STANDIN_MEDIA_URL",
    }
