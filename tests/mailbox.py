"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, with scripted failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

#: A script step that closes the connection in the middle of the message (after DATA, before the answer).
DROP = "drop"


class Mailbox:
    """Answers each message with the next scripted reply (``"451 ..."``, ``"550 ..."``, ``DROP``), then 250."""

    def __init__(self, script: Sequence[str] = (), refuse: Mapping[str, str] | None = None) -> None:
        self.script = list(script)
        #: Recipient -> the reply refusing it (``"450 greylisted"``); the others are accepted.
        self.refuse = dict(refuse or {})
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.tries = 0
        self.port = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tries += 1
        reply = self.script.pop(0) if self.script else "250 OK"
        if reply == DROP:
            server.transport.close()
            return "421 closing"
        if reply.startswith("250"):
            self.messages.append(message_from_bytes(envelope.content, policy=default))  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
        return reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mailbox(
    script: Sequence[str] = (), port: int | None = None, refuse: Mapping[str, str] | None = None
) -> Iterator[Mailbox]:
    box = Mailbox(script, refuse)
    box.port = port or free_port()
    server = Controller(box, hostname="127.0.0.1", port=box.port)
    server.start()
    try:
        yield box
    finally:
        server.stop()
