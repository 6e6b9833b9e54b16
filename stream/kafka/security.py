"""Kafka transport security from ``[kafka]``: the same settings for Faust and aiokafka clients."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from stream.config.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """A client TLS context when the protocol uses TLS, else None."""
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile is not None:
        context.load_cert_chain(
            str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
        )
    return context


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        kwargs["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        password = kafka.sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` for ``kafka`` (None for plaintext)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(kafka)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = kafka.sasl_password
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=password.get_secret_value() if password else None,
        mechanism=kafka.sasl_mechanism,
        ssl_context=context,
    )
