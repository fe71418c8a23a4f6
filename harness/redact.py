"""One scrubber for every byte ampbench writes: result files, cassettes, logs and what it prints.

It removes three kinds of secret:

- the run's own keys and every `Authorization` / `x-api-key` value seen on the
  wire (added with `Scrubber.add` as they become known);
- credentials inside URLs: `http://user:PASSWORD@host` keeps `user:***@host`;
- strings shaped like provider keys (`sk-…`, `sk-ant-…`, Google's `AIza…`),
  because providers echo keys in error bodies, and users paste them into prompts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "<redacted>"

_URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s\"']*):(?P<password>[^@/\s\"']+)@"
)
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-ant-[A-Za-z0-9_*-]{8,}"
    r"|sk-(?:proj-|svcacct-|or-v1-)?[A-Za-z0-9_*-]{16,}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|gsk_[A-Za-z0-9]{20,}"
    r")"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# Keys that are no secret: placeholders ampbench itself sends to servers that want none.
_NOT_SECRETS = frozenset({"sim-not-a-secret", "no-key", "sim", "dummy", "test"})


def mask_url(url: str) -> str:
    """A URL with its password replaced by `***` (the user name stays, to tell accounts apart)."""
    return _URL_CREDENTIALS.sub(r"\g<head>:***@", url)


def scrub_patterns(text: str) -> str:
    """What needs no list of secrets: URL passwords, key-shaped strings and bearer tokens."""
    if "://" in text:
        text = mask_url(text)
    if "sk-" in text or "AIza" in text or "gsk_" in text:
        text = _KEY_SHAPES.sub(REDACTED, text)
    if "earer" in text:
        text = _BEARER.sub(r"\g<1>" + REDACTED, text)
    return text


class Scrubber:
    """Replaces every known secret and every secret-shaped string in text or bytes."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def add_url(self, url: str | None) -> None:
        """Never write the password of a URL (nor the Basic credentials made from it)."""
        if not url:
            return
        import base64
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        if parts.password:
            self.add(unquote(parts.password))
            user = unquote(parts.username or "")
            self.add(base64.b64encode(f"{user}:{unquote(parts.password)}".encode()).decode())

    def add(self, secret: str | None) -> None:
        """Never write `secret` again (ignores placeholders and strings too short to be keys)."""
        if not secret:
            return
        secret = secret.strip()
        scheme, _, token = secret.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            secret = token.strip()
        if len(secret) < 8 or secret in _NOT_SECRETS or secret in self._secrets:
            return
        self._secrets.append(secret)
        # Longest first, so a key that contains another is replaced whole.
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return scrub_patterns(text)

    def bytes(self, data: bytes) -> bytes:
        if not data:
            return data
        # surrogateescape round-trips any byte, so binary bodies are scrubbed too.
        text = data.decode("utf-8", "surrogateescape")
        scrubbed = self(text)
        return data if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")


# Environment variable names that hold credentials: never passed on, always scrubbed.
_SECRET_NAME = re.compile(
    r"(^|_)(API_?KEY|KEY|KEYS|TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|AUTH|COOKIE)(_|$)"
    r"|^(AWS|AZURE|GOOGLE|GCLOUD|GCP|OPENAI|ANTHROPIC|GEMINI|MISTRAL|COHERE|GROQ|DEEPSEEK|OPENROUTER|XAI"
    r"|HF|HUGGINGFACE|HUGGING_FACE|GITHUB|GH|GITLAB|NPM|PYPI|TWINE|DOCKER|SSH|GPG|VAULT|KUBE)_",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for environment variable names that look like they hold credentials."""
    return bool(_SECRET_NAME.search(name))
