"""A real SMTP server (aiosmtpd) for the xiaotong-channels tests.

Prints `PORT <n>` once listening, `CONN <peer port>` for every accepted
connection and `MSG <json>` for every accepted message. Exits when its
stdin closes (the test process is gone).

Recipients starting with `nobody@` are refused with 550, `busy@` with 451.

Options: `--tls starttls|implicit` (with the test certificate beside this
file; STARTTLS is then required) and `--auth USER:PASSWORD` (AUTH required,
only over TLS).
"""

import asyncio
import email
import argparse
import json
import logging
import os
import ssl
import sys
import threading
import warnings
from email import policy

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

warnings.simplefilter("ignore")
# aiosmtpd logs a deprecation warning of its own on every AUTH.
logging.getLogger("mail.log").setLevel(logging.ERROR)

HERE = os.path.dirname(os.path.abspath(__file__))


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.startswith("busy@"):
            return "451 4.3.0 <%s>: Temporary lookup failure" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=policy.default)
        parts = {}
        for part in msg.walk():
            ct = part.get_content_type()
            if ct in ("text/plain", "text/html") and not part.is_multipart():
                parts[ct] = part.get_content()
        out = {
            "peer_port": session.peer[1],
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "tls": session.ssl is not None or getattr(server, "implicit_tls", False),
            "authenticated": bool(session.authenticated),
            "login": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None,
        }
        print("MSG " + json.dumps(out, ensure_ascii=False), flush=True)
        return "250 2.0.0 Ok: queued"


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        if getattr(self, "implicit_tls", None) is None:
            self.implicit_tls = transport.get_extra_info("ssl_object") is not None
        peer = transport.get_extra_info("peername")
        print("CONN %d" % peer[1], flush=True)


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--auth", default=None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    loop = asyncio.get_running_loop()
    handler = Handler()
    ctx = None
    if args.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(HERE, "test-cert.pem"), os.path.join(HERE, "test-key.pem"))
    kwargs = {"hostname": "mx.test.local"}
    if args.tls == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)
        # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the whole
        # connection is encrypted already.
        kwargs.update(authenticator=Authenticator(user, password), auth_required=True,
                      auth_require_tls=args.tls != "implicit")
    server = await loop.create_server(
        lambda: CountingSMTP(handler, **kwargs),
        "127.0.0.1",
        args.port,
        ssl=ctx if args.tls == "implicit" else None,
    )
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
