"""The ``magiclink`` command: demo guard rails, migrate, secret; the demo's secret file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from magiclink_asgi import cli
from magiclink_asgi.demo import load_secret


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_demo_refuses_a_public_host_with_the_mailbox_on(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "--host", host]) == 2
    assert "refusing to listen" in capsys.readouterr().err


def test_demo_starts_uvicorn_on_loopback_and_prints_the_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    seen: dict[str, object] = {}

    def fake_run(app: object, **options: object) -> None:
        seen.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    status = cli.main(["demo", "--port", "8123", "--data-dir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert status == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    # the client IP is the socket's peer: uvicorn, by default, would take X-Forwarded-For and
    # X-Forwarded-Proto from any local client (a spoofed IP in the email, a fresh code budget)
    assert seen["proxy_headers"] is False
    options = {name: value for name, value in seen.items() if name != "app"}
    config = uvicorn.Config(seen["app"], **options)
    config.load()
    assert not isinstance(config.loaded_app, ProxyHeadersMiddleware)
    assert "http://127.0.0.1:8123" in out
    assert "http://127.0.0.1:8123/auth/dev/mailbox" in out
    assert (tmp_path / "d" / "secret").exists()


def test_secret_file_is_private_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / ".magiclink"
    first = load_secret(folder)
    assert len(first) >= 32
    assert stat.S_IMODE((folder / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert load_secret(folder) == first
    (folder / "secret").chmod(0o644)
    assert load_secret(folder) == first
    assert stat.S_IMODE((folder / "secret").stat().st_mode) == 0o600


def test_a_too_short_secret_file_is_replaced(tmp_path: Path) -> None:
    tmp_path.joinpath("secret").write_text("short\n")
    assert len(load_secret(tmp_path)) >= 32


def test_secret_prints_a_fresh_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["secret"]) == 0
    one = capsys.readouterr().out.strip()
    cli.main(["secret"])
    assert len(one) >= 32 and one != capsys.readouterr().out.strip()


def test_migrate_a_sqlite_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert cli.main(["migrate", "--database", url]) == 0
    assert "schema at version" in capsys.readouterr().out
    assert (tmp_path / "m.db").exists()
    assert cli.main(["migrate", "--database", url]) == 0  # idempotent


def test_migrate_memory_has_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["migrate", "--database", "memory://"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out


def test_migrate_an_unknown_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["migrate", "--database", "mysql://x/y"]) == 2
    assert "unknown storage URL scheme" in capsys.readouterr().err


def test_migrate_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["migrate", "--database", "postgresql://u:hunter2@127.0.0.1:1/db"])
    captured = capsys.readouterr()
    assert status == 1
    assert "hunter2" not in captured.out + captured.err


def test_migrate_needs_a_database(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["migrate"])
    assert "--database" in capsys.readouterr().err
