"""A local SMTP sink for the alert tests (issue 17): just enough SMTP (RFC 5321) for one client at a
time, keeping each mail it receives. ``tests/dags/test_alerts.py`` sends to it from the callback
directly; ``tests/airflow`` points the standalone's SMTP connection at it, so the failure mails of
the drill runs come through Airflow's scheduler and DAG processor."""
from __future__ import annotations

import email
import socketserver
import threading
import time
from email import policy

import pytest


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for one client: EHLO/HELO, MAIL, RCPT, DATA, QUIT."""

    def handle(self):
        w = lambda s: self.wfile.write((s + "\r\n").encode())  # noqa: E731
        w("220 sink ESMTP")
        rcpt, mail_from = [], ""
        while line := self.rfile.readline():
            cmd = line.decode().strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                w("250-sink")
                w("250 8BITMIME")
            elif up.startswith("HELO") or up.startswith("RSET") or up.startswith("NOOP"):
                w("250 ok")
            elif up.startswith("MAIL FROM:"):
                mail_from = cmd[10:].strip()
                w("250 ok")
            elif up.startswith("RCPT TO:"):
                rcpt.append(cmd[8:].strip().strip("<>"))
                w("250 ok")
            elif up == "DATA":
                w("354 end with .")
                data = []
                while (d := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    data.append(d[1:] if d.startswith(b"..") else d)
                self.server.mails.append({"from": mail_from, "to": rcpt, "data": b"".join(data)})
                w("250 queued")
            elif up == "QUIT":
                w("221 bye")
                return
            else:
                w("502 not implemented")


def start():
    """A running sink on a free loopback port (``.mails``; stop with :func:`stop`)."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    srv.daemon_threads = True
    srv.mails = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


def stop(srv) -> None:
    srv.shutdown()
    srv.server_close()


def connection_json(srv) -> str:
    """``AIRFLOW_CONN_SMTP_DEFAULT`` for the SMTP provider: plain SMTP to the sink."""
    port = srv.server_address[1]
    return (f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, '
            '"extra": {"disable_ssl": true, "disable_tls": true, "from_email": "ccip@test"}}')


def parsed(mail: dict):
    return email.message_from_bytes(mail["data"], policy=policy.default)


def html_body(mail: dict) -> str:
    return next(p for p in parsed(mail).walk() if p.get_content_type() == "text/html").get_content()


def wait_for(srv, match, timeout: float = 180):
    """The first mail whose subject contains ``match``, waiting for it (callbacks run after the run ends)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        for m in list(srv.mails):
            if match in str(parsed(m)["Subject"]):
                return m
        time.sleep(1)
    raise AssertionError(f"no mail with {match!r} in its subject within {timeout:.0f} s: "
                         f"{[str(parsed(m)['Subject']) for m in srv.mails]}")


@pytest.fixture()
def smtp_sink():
    srv = start()
    yield srv
    stop(srv)
