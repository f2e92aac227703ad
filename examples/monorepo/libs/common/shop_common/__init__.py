"""What the shop's services share: their settings, read from the environment."""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    port: int
    queue: str


def settings() -> Settings:
    return Settings(port=int(os.environ.get("PORT", "8000")), queue=os.environ.get("QUEUE", "orders"))
