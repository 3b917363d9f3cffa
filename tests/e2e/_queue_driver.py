"""A small station for the SIGKILL test: queue source files durably and upload them.

Run as ``python _queue_driver.py --config F --sources DIR --ready FILE``
(``--helper``: uploads may use the upload helper process, as the config says). It
touches ``FILE`` once the uploader runs, then moves the source files into the
queue in small random batches (each source is deleted only after its report
is durable), then waits until the queue is empty and exits 0. The test kills
it with SIGKILL at random moments and starts it again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
from pathlib import Path

from pywats_client._fsutil import fsync_dir
from pywats_client.core import ClientConfig
from pywats_client.queue import NewReport
from pywats_client.services import ConnectionService, QueueService, WATSApiClient


async def main(config_path: Path, sources: Path, ready: Path, batch_max: int, helper: bool) -> int:
    config = ClientConfig.load(config_path)
    api = WATSApiClient(config)
    conn = ConnectionService(config, api, retry_min=0.1, retry_max=0.5)
    queue = QueueService(config, api, connection=conn, helper_process=helper)
    await conn.start()
    await queue.start()
    ready.touch()
    rng = random.Random()
    first = True
    while names := sorted(p.name for p in sources.iterdir())[: rng.randint(1, batch_max)]:
        items = []
        for name in names:
            raw = (sources / name).read_bytes()
            report = json.loads(raw)
            # after a crash, a source whose report is already queued is not queued again
            if first and queue.store.contains(report["id"]):
                continue
            items.append(NewReport(report, name, hashlib.sha256(raw).hexdigest(), "driver"))
        first = False
        await asyncio.to_thread(queue.store.enqueue, items)
        queue.wake()
        for name in names:
            (sources / name).unlink()
        fsync_dir(sources)
    while (await queue.get_status())["pending"]:  # the test bounds this run with a timeout
        await asyncio.sleep(0.05)  # poll interval: until the queue is empty
    await queue.stop()
    await conn.stop()
    await api.aclose()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--batch-max", type=int, default=5)
    parser.add_argument("--helper", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.config, args.sources, args.ready, args.batch_max, args.helper)))
