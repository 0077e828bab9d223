"""Real mail servers for the e-mail tests, on loopback: Dovecot (IMAP) started with its own
configuration in a temporary directory (passwd-file user, maildir, optional self-signed TLS),
and a self-signed certificate for the STARTTLS tests of the SMTP side.

Dovecot refuses mail processes running as root, so as root the mail user is `nobody` and the
maildir belongs to it; as an ordinary user everything runs as that user.
"""

from __future__ import annotations

import contextlib
import getpass
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.email.adapter import EmailAdapter
from kcc.app import create_app
from kcc.clock import ManualClock
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings
from kcc.web_keys import CHANNELS

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, valid one day; returns (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Dovecot:
    root: Path
    port: int
    user: str
    password: str
    process: subprocess.Popen[bytes]
    tls_port: int | None = None
    cert: Path | None = None

    def client(self) -> imaplib.IMAP4:
        connection = imaplib.IMAP4("127.0.0.1", self.port)
        connection.login(self.user, self.password)
        return connection

    def append(self, raw: bytes, mailbox: str = "INBOX") -> None:
        with self.client() as connection:
            status, _ = connection.append(mailbox, None, None, raw)
            assert status == "OK"

    def uids(self, mailbox: str = "INBOX", criteria: str = "ALL") -> list[int]:
        with self.client() as connection:
            status, _ = connection.select(f'"{mailbox}"')
            if status != "OK":
                return []
            _, data = connection.uid("SEARCH", None, criteria)
            return [int(uid) for uid in data[0].split()]

    def kick(self) -> None:
        """Drop the user's connections, as a server restart would."""
        subprocess.run(
            [shutil.which("doveadm") or "/usr/bin/doveadm", "-c", str(self.root / "dovecot.conf"),
             "kick", self.user],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, remove: bool = True) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def require_dovecot() -> None:
    """Like the PostgreSQL and Redis fixtures: skipped where Dovecot is missing, except in CI
    (`make setup` installs it from scripts/system-packages.txt)."""
    if os.path.exists(DOVECOT) and shutil.which("openssl"):
        return
    message = "dovecot-imapd and openssl are not installed (make setup installs them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def start_dovecot(tls: bool = False, capabilities: str | None = None) -> Dovecot:
    """`capabilities`: the list announced after login instead of Dovecot's own (to test a
    server without IDLE or MOVE)."""
    require_dovecot()
    # Its own directory, reachable by Dovecot's unprivileged processes (pytest's tmp_path is
    # private to the user running the tests); removed again by `stop`.
    root = Path(tempfile.mkdtemp(prefix="kcc-dovecot-"))
    root.chmod(0o711)
    user, password = "kcc", "geheim-test"
    as_root = os.geteuid() == 0
    uid, gid = (65534, 65534) if as_root else (os.getuid(), os.getgid())
    mail = root / "mail"
    mail.mkdir()
    os.chown(mail, uid, gid)
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{mail}/{user}\n")
    cert = key = None
    if tls:
        cert, key = self_signed_certificate(root)
    for _attempt in range(5):
        port = free_port()
        tls_port = free_port() if tls else None
        config = _config(root, port, tls_port, cert, key, as_root)
        if capabilities:
            config += f"imap_capability = {capabilities}\n"
        (root / "dovecot.conf").write_text(config)
        process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = Dovecot(root, port, user, password, process, tls_port, cert)
        if _wait_listening(port, process):
            return server
        log = server.log()
        server.stop(remove=False)  # most likely the port was taken meanwhile: another one
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"dovecot did not start:\n{log}")


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def _config(
    root: Path,
    port: int,
    tls_port: int | None,
    cert: Path | None,
    key: Path | None,
    as_root: bool,
) -> str:
    me = getpass.getuser()
    users = "" if as_root else f"default_login_user = {me}\ndefault_internal_user = {me}\n"
    ssl = (
        f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\nssl_dh = </usr/share/dovecot/dh.pem\n"
        if cert and key
        else "ssl = no\n"
    )
    imaps = f"port = {tls_port}\n    ssl = yes" if tls_port else "port = 0"
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = kcc-test-{port}
log_path = {root}/dovecot.log
{users}{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1
imap_idle_notify_interval = 1 secs
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    {imaps}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""


@contextlib.contextmanager
def dovecot(tls: bool = False, capabilities: str | None = None) -> Iterator[Dovecot]:
    server = start_dovecot(tls, capabilities)
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def email_service(
    tmp_path: Path,
    secrets: dict[str, str],
    database_url: str = "",
    redis_url: str = "",
    clock: ManualClock | None = None,
    max_attachment_bytes: int = 20 * 1024 * 1024,
) -> AsyncIterator[tuple[Services, TestClient[object, object], EmailAdapter]]:
    """A real service (as `tests.helpers.running_service`) whose settings carry the e-mail
    channel's environment; yields the running e-mail adapter too."""
    settings = Settings(
        data_dir=tmp_path / "data",
        config_dir=REPO_CONFIG,
        database_url=database_url,
        redis_url=redis_url,
        secrets=secrets,
        max_attachment_bytes=max_attachment_bytes,
    )
    services = await Services.build(settings, clock or ManualClock())
    app = create_app(services, sweep=False)
    client: TestClient[object, object] = TestClient(TestServer(app))
    await client.start_server()
    try:
        adapter = next(channel for channel in app[CHANNELS] if isinstance(channel, EmailAdapter))
        yield services, client, adapter
    finally:
        await client.close()
