"""Sending e-mail over real SMTP: host, port, STARTTLS or SSL, login (settings ``RERATE_SMTP_*``)."""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from rerate.services.errors import InvalidInputError, RerateError
from rerate.settings import Settings


class MailError(RerateError):
    """The message could not be handed to the SMTP server."""


def send_mail(
    settings: Settings, to: Sequence[str], subject: str, body: str, attachments: Sequence[Path] = ()
) -> str:
    """Send one message; returns its Message-ID.  Raises :class:`MailError` naming the server's answer."""
    if not settings.smtp_host:
        raise InvalidInputError("no SMTP server configured: set RERATE_SMTP_HOST (and port, user, password)")
    if not to or any("@" not in address for address in to):
        raise InvalidInputError(f"not an e-mail address: {', '.join(to) or 'none given'}")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.partition("@")[2] or "rerate")
    message.set_content(body)
    security = settings.smtp_security.lower()
    if security not in ("starttls", "ssl", "none"):
        raise InvalidInputError(
            f"RERATE_SMTP_SECURITY is {settings.smtp_security!r}: use starttls, ssl or none"
        )
    try:
        for path in attachments:
            kind, _ = mimetypes.guess_type(path.name)
            main, _, sub = (kind or "application/octet-stream").partition("/")
            message.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, context=ssl.create_default_context(), timeout=30
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
        with client:
            if security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password or "")
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"mail to {', '.join(to)} via {settings.smtp_host}:{settings.smtp_port} failed: {exc}"
        ) from exc
    return str(message["Message-ID"])
