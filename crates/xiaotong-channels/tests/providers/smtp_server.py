"""A real SMTP server (aiosmtpd) for the xiaotong-channels tests.

Prints `PORT <n>` once listening, `CONN <peer port>` for every accepted
connection and `MSG <json>` for every accepted message. Exits when its
stdin closes (the test process is gone).

Recipients starting with `nobody@` are refused with 550, `busy@` with 451.
"""

import asyncio
import email
import json
import os
import sys
import threading
from email import policy

from aiosmtpd.smtp import SMTP


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
        }
        print("MSG " + json.dumps(out, ensure_ascii=False), flush=True)
        return "250 2.0.0 Ok: queued"


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        print("CONN %d" % peer[1], flush=True)


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def main():
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    loop = asyncio.get_running_loop()
    handler = Handler()
    server = await loop.create_server(
        lambda: CountingSMTP(handler, hostname="mx.test.local"), "127.0.0.1", 0
    )
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
