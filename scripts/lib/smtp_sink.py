"""A local SMTP sink: accepts every message and keeps it where a developer can read it.

Each accepted message becomes one file in MAILDIR/new/ (a Maildir: write to tmp/, then
rename), with the envelope added as X-Peer, X-MailFrom and X-RcptTo headers. With --json,
a decoded summary of each message (headers and the text and HTML parts) is also written to
MAILDIR/parsed/<name>.json for tests to read.

    python smtp_sink.py --port 1025 --maildir .local/mail [--json] [--dedupe]
                        [--reject "550 5.7.1 rejected"] [--delay SECONDS]

--dedupe accepts a message whose Message-ID was already stored without storing it again
(what a receiver does with a re-send); --reject answers every DATA with the given reply;
--delay waits that long before storing and answering (a slow server, for crash tests).
Stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import email
import email.policy
import json
import mailbox
import os
import signal
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message


class MaildirSink(Message):
    def __init__(self, maildir, write_json=False, dedupe=False, reject=None, delay=0.0):
        super().__init__()
        self.delay = delay
        self.maildir_path = maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.mailbox = mailbox.Maildir(maildir, create=False)
        self.write_json = write_json
        self.dedupe = dedupe
        self.reject = reject
        self.seen = {}
        if write_json:
            os.makedirs(os.path.join(maildir, "parsed"), exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reject:
            return self.reject
        message = self.prepare_message(session, envelope)
        message_id = (message.get("Message-ID") or "").strip()
        if self.dedupe and message_id in self.seen:
            print(f"duplicate {message_id} not stored (first: {self.seen[message_id]})", flush=True)
            return f"250 OK duplicate of {self.seen[message_id]}"
        key = self.mailbox.add(message)
        if message_id:
            self.seen[message_id] = key
        if self.write_json:
            self._write_json(key)
        print(f"stored {key} {message_id} for {message.get('X-RcptTo')}", flush=True)
        return f"250 OK queued as {key}"

    def handle_message(self, message):
        """Unused: handle_DATA stores the message itself to answer with its name."""

    def _write_json(self, key):
        with open(os.path.join(self.maildir_path, "new", key), "rb") as f:
            parsed = email.message_from_binary_file(f, policy=email.policy.default)
        parts = {}
        for part in parsed.walk():
            if part.is_multipart():
                continue
            parts[part.get_content_type()] = part.get_content()
        summary = {
            "file": key,
            "from": str(parsed.get("From", "")),
            "to": str(parsed.get("To", "")),
            "rcpt_tos": str(parsed.get("X-RcptTo", "")),
            "subject": str(parsed.get("Subject", "")),
            "message_id": str(parsed.get("Message-ID", "")),
            "content_type": parsed.get_content_type(),
            "parts": parts,
        }
        tmp = os.path.join(self.maildir_path, "parsed", f".{key}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f)
        os.replace(tmp, os.path.join(self.maildir_path, "parsed", f"{key}.json"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--json", action="store_true", help="also write decoded summaries")
    parser.add_argument("--dedupe", action="store_true", help="store a Message-ID once")
    parser.add_argument("--reject", help='answer DATA with this reply, e.g. "550 5.7.1 no"')
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait in DATA")
    args = parser.parse_args()

    handler = MaildirSink(args.maildir, args.json, args.dedupe, args.reject, args.delay)
    controller = Controller(handler, hostname=args.host, port=args.port)
    controller.start()
    print(
        f"SMTP sink on {args.host}:{args.port}; mails in {os.path.abspath(args.maildir)}/new",
        flush=True,
    )

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
