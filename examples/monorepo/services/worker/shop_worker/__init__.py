"""The shop's worker: takes orders off the queue (here, one line a minute)."""

import time

from shop_common import settings


def main() -> None:
    queue = settings().queue
    while True:
        print(f"worker: waiting for orders on {queue}", flush=True)
        time.sleep(60)
