"""Mail through the configured smarthost (`SmtpSettings`): STARTTLS before any login, the password
from its file, a bounded wait. Blocking (smtplib): callers run it in a worker thread. Errors say what
failed without the password or the message."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from ..config.model import SmtpSettings
from ..config import split_listen

TIMEOUT = 30.0


class MailError(Exception):
    pass


def message(smtp: SmtpSettings, to: list[str], subject: str, text: str,
            attachments: list[tuple[str, bytes, str]] = ()) -> EmailMessage:  # type: ignore[assignment]
    """attachments: (file name, content, MIME type such as text/plain)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.from_addr, ", ".join(to), subject
    msg.set_content(text)
    for name, data, mime in attachments:
        main, _, sub = mime.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub or "octet-stream", filename=name)
    return msg


def send(smtp: SmtpSettings, msg: EmailMessage, timeout: float = TIMEOUT,
         context: ssl.SSLContext | None = None) -> None:
    """Sends one message; MailError when the server does not take it. `context`: the TLS context of
    STARTTLS (the system's trusted CAs by default)."""
    host, port = split_listen(smtp.smarthost)
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as s:
            s.ehlo()
            if smtp.starttls:
                if not s.has_extn("starttls"):
                    raise MailError(f"{smtp.smarthost} does not offer STARTTLS (set starttls: false only for a "
                                    f"server on this machine)")
                s.starttls(context=context or ssl.create_default_context())
                s.ehlo()
            if smtp.username:
                s.login(smtp.username, smtp.password or "")
            refused = s.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"{smtp.smarthost} refused the login of {smtp.username}: {exc.smtp_code}") from None
    except smtplib.SMTPException as exc:
        raise MailError(f"{smtp.smarthost}: {type(exc).__name__}: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"{smtp.smarthost}: {type(exc).__name__}: {exc}") from None
    if refused:
        raise MailError(f"{smtp.smarthost} refused {', '.join(sorted(refused))}")
