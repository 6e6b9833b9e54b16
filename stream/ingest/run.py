"""``funnel ingest`` as a process: Kafka checked, the topics ensured, the gateway listening
until SIGINT or SIGTERM.

The routes and their answers are ``stream.ingest.server.Gateway``'s; this module only starts
and stops what the gateway needs around it (the producer, the listening socket).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from stream.config.settings import Settings
from stream.ingest.errors import IngestError
from stream.ingest.server import Gateway

log = logging.getLogger(__name__)


async def serve(settings: Settings, port: int, ready: Callable[[str], None] | None = None) -> None:
    """Run the gateway until SIGINT or SIGTERM: check Kafka, ensure the topics, listen."""
    from stream.ingest.producer import EventProducer
    from stream.kafka.admin import ensure_topics, wait_for_broker
    from stream.kafka.security import client_kwargs

    kwargs = client_kwargs(settings.kafka)
    names = settings.topics
    await wait_for_broker(settings.bootstrap_servers, settings.kafka.connect_timeout, **kwargs)
    await ensure_topics(
        settings.bootstrap_servers,
        dict.fromkeys(names.inputs, settings.partitions),
        client_kwargs=kwargs,
    )
    ingest = settings.ingest
    producer = EventProducer(
        settings.bootstrap_servers,
        names,
        timeout=ingest.produce_timeout,
        retry_after=ingest.retry_after,
        client_kwargs=kwargs,
    )
    await producer.start()
    if not ingest.write_keys:
        log.warning("no write keys (FUNNEL_INGEST_WRITE_KEYS): every Segment call is refused")
    if ingest.hubspot.app_secret is None:
        log.warning("no HubSpot app secret (FUNNEL_HUBSPOT_APP_SECRET): webhooks are refused")
    runner = web.AppRunner(Gateway(settings, producer).app(), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, ingest.bind, port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise IngestError(f"cannot listen on {ingest.bind}:{port}: {exc.strerror}") from None
        address = f"http://{ingest.bind}:{port}"
        log.info("ingest gateway listening on %s brokers=%s", address, ",".join(settings.broker))
        if ready is not None:
            ready(address)
        await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


def run_gateway(
    settings: Settings, port: int | None = None, on_ready: Callable[[str], None] | None = None
) -> int:
    """``funnel ingest``: the gateway in the foreground, ``on_ready(address)`` once it
    listens; returns the exit code."""
    asyncio.run(serve(settings, port or settings.ingest.port, on_ready))
    return 0
