"""How to reach the LiveKit server: the URL and the API key and secret."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """How to reach the LiveKit server. Picklable; crosses into job processes."""

    url: str
    api_key: str
    api_secret: str

    @property
    def http_url(self) -> str:
        return self.url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
