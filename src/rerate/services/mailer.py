"""Sending e-mail over real SMTP: host, port, STARTTLS or SSL, login (settings ``RERATE_SMTP_*``).

A failure is either temporary (the server said 4xx, or the connection failed
or dropped) and worth another try after a pause, or permanent (5xx: a refused
recipient, a rejected login, a message too large) and reported as it is.
"""

from __future__ import annotations

import mimetypes
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from rerate.services.errors import InvalidInputError, RerateError
from rerate.settings import Settings

SECURITY = ("starttls", "ssl", "none")
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


class MailError(RerateError):
    """The message could not be handed to the SMTP server."""

    #: Whether trying again later may succeed.
    temporary = False


class TemporaryMailError(MailError):
    temporary = True


class PermanentMailError(MailError):
    temporary = False


@dataclass(frozen=True)
class Sent:
    message_id: str
    attempts: int
    #: Recipients the server refused while accepting the others.
    refused: tuple[str, ...] = ()


#: One plain address: a local part, one @, a dotted domain; no spaces, separators or brackets
#: (two addresses in one, "a@b;c@d", are two entries).
_ADDRESS = re.compile(
    r"[^@\s;,<>()\[\]\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


def check_addresses(addresses: Sequence[str]) -> list[str]:
    cleaned = [a.strip() for a in addresses if a.strip()]
    bad = [a for a in cleaned if not _ADDRESS.fullmatch(a) or ".." in a]
    if not cleaned or bad:
        raise InvalidInputError(f"not an e-mail address: {', '.join(bad) or 'none given'}")
    return cleaned


def build_message(
    settings: Settings,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Path] = (),
    cc: Sequence[str] = (),
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(check_addresses(to))
    if cc:
        message["Cc"] = ", ".join(check_addresses(cc))
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.partition("@")[2] or "rerate")
    message.set_content(body)
    for path in attachments:
        kind, encoding = mimetypes.guess_type(path.name)
        if encoding is not None:  # a compressed file (x.csv.gz) is sent as what it is, not as text
            kind = _COMPRESSED.get(encoding, "application/octet-stream")
        main, _, sub = (kind or "application/octet-stream").partition("/")
        # Text files are written in UTF-8: saying so keeps mail readers from guessing US-ASCII.
        params = {"charset": "utf-8"} if main == "text" else {}
        message.add_attachment(
            path.read_bytes(), maintype=main, subtype=sub, filename=path.name, params=params
        )
    return message


def _server(settings: Settings) -> str:
    return f"{settings.smtp_host}:{settings.smtp_port}"


def _classified(exc: Exception, settings: Settings) -> MailError:
    where = f"via {_server(settings)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = exc.recipients.values()
        codes = [code for code, _ in answers]
        detail = "; ".join(
            f"{who}: {code} {text.decode(errors='replace')}" for who, (code, text) in exc.recipients.items()
        )
        kind = TemporaryMailError if all(400 <= c < 500 for c in codes) else PermanentMailError
        return kind(f"every recipient refused {where}: {detail}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        kind = TemporaryMailError if 400 <= exc.smtp_code < 500 else PermanentMailError
        return kind(f"the server {where} answered {exc.smtp_code} {text}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TemporaryMailError(f"the server {where} closed the connection: {exc or 'no answer'}")
    if isinstance(exc, ssl.SSLError):
        return PermanentMailError(f"TLS with {_server(settings)} failed: {exc}")
    if isinstance(exc, OSError):
        return TemporaryMailError(f"cannot reach the mail server {_server(settings)}: {exc}")
    return PermanentMailError(f"mail {where} failed: {exc}")


def deliver_once(settings: Settings, message: EmailMessage) -> tuple[str, ...]:
    """Hand ``message`` to the server once; returns the refused recipients (the others got it)."""
    if not settings.smtp_host:
        raise InvalidInputError("no SMTP server configured: set RERATE_SMTP_HOST (and port, user, password)")
    security = settings.smtp_security.lower()
    if security not in SECURITY:
        raise InvalidInputError(f"RERATE_SMTP_TLS is {settings.smtp_security!r}: use starttls, ssl or none")
    timeout = settings.smtp_timeout_seconds
    try:
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, context=ssl.create_default_context(), timeout=timeout
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        try:
            if security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password or "")
            refused = client.send_message(message)
        except BaseException:
            client.close()
            raise
    except (smtplib.SMTPException, OSError) as exc:
        raise _classified(exc, settings) from exc
    _say_goodbye(client)
    # Each refused recipient with the server's answer: "billing@x (450 greylisted)".
    return tuple(sorted(f"{address} ({_answer(reply)})" for address, reply in refused.items()))


def _say_goodbye(client: smtplib.SMTP) -> None:
    """QUIT after the server accepted the message: whatever it answers now, the message is
    delivered, and trying again would send the customer a second copy."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _answer(reply: object) -> str:
    if isinstance(reply, tuple) and len(reply) == 2:
        code, text = reply
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return f"{code} {text}".strip()
    return str(reply)


def deliver(
    settings: Settings,
    message: EmailMessage,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, MailError], None] | None = None,
) -> Sent:
    """Send with retries: temporary failures wait ``smtp_backoff_seconds`` (doubling) and try again.

    Raises the last :class:`MailError`; its ``attempts`` attribute says how many tries were made.
    """
    attempts = max(1, settings.smtp_attempts)
    for attempt in range(1, attempts + 1):
        try:
            refused = deliver_once(settings, message)
            return Sent(str(message["Message-ID"]), attempt, refused)
        except MailError as exc:
            exc.attempts = attempt  # type: ignore[attr-defined]
            if not exc.temporary or attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(settings.smtp_backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable: the loop returns or raises")


def send_mail(
    settings: Settings, to: Sequence[str], subject: str, body: str, attachments: Sequence[Path] = ()
) -> str:
    """Send one message (with retries); returns its Message-ID.  Raises :class:`MailError`."""
    if not settings.smtp_host:
        raise InvalidInputError("no SMTP server configured: set RERATE_SMTP_HOST (and port, user, password)")
    return deliver(settings, build_message(settings, to, subject, body, attachments)).message_id
