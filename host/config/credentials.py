"""How to reach the LiveKit server: the URL and the API key and secret."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """How to reach the LiveKit server. Picklable; crosses into job processes."""

    url: str
    api_key: str
    api_secret: str

    @property
    def shown_url(self) -> str:
        """The URL as logs and /status show it: without any user:password@ part."""
        return redact_url(self.url)

    @property
    def http_url(self) -> str:
        return self.url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


_USERINFO = re.compile(r"(\w+://)[^/@\s]*@")


def without_userinfo(url: str) -> str:
    """One URL without its user and password, whatever characters they hold: `redis://u:p@ss@host/0` ->
    `redis://***@host/0`."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def redact_url(text: str) -> str:
    """`text` (a URL, or a message with URLs in it) without credentials: `ws://user:pass@host` ->
    `ws://***@host`."""
    return _USERINFO.sub(r"\1***@", text)
