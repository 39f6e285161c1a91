"""A real SMTP server (aiosmtpd) that accepts everything and prints one line
per accepted message: `MSG <recipient> <subject>`. Prints `PORT <n>` once
listening. `--port N` binds a fixed port (0: any free one). Exits when
stdin closes. Used by the message-center tests and `cargo xtask bench fanout`.
"""

import argparse
import asyncio
import email
import sys
import threading
from email import policy
from email.header import decode_header, make_header

from aiosmtpd.controller import Controller

out_lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        subject = ""
        raw = envelope.original_content or envelope.content
        for line in raw.split(b"\r\n"):
            if not line:
                break
            if line.lower().startswith(b"subject:"):
                try:
                    subject = str(make_header(decode_header(line[8:].decode().strip())))
                except Exception:
                    subject = line[8:].decode(errors="replace").strip()
        with out_lock:
            for rcpt in envelope.rcpt_tos:
                sys.stdout.write("MSG %s %s\n" % (rcpt, subject.replace("\n", " ")))
            sys.stdout.flush()
        return "250 2.0.0 Ok: queued"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    port = args.port
    if port == 0:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    print("PORT %d" % controller.port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
