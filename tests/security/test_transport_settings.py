"""SASL and TLS settings from the configuration reach every Kafka client, password included.

The worker's Kafka clients are built by Faust from ``broker_credentials``; the command line's
(topics, reports, the generator) by aiokafka from ``client_kwargs``. Both are checked down to
what aiokafka receives, through Faust's own translation (``credentials_to_aiokafka_auth``).
The password is read from the variable the file names, and never shows in a dump.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.errors import ConfigError
from stream.kafka.security import client_kwargs, faust_credentials

PASSWORD = "pw-9a7c1e-not-in-dumps"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=funnel-test-ca"],
        cwd=directory, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "ca.pem"


def settings(tmp_path: Path, kafka: str, **environ: str) -> Settings:
    config = tmp_path / "funnel.toml"
    config.write_text("[kafka]\n" + kafka)
    return load_settings(config, environ=environ)


def as_faust_gives_aiokafka(s: Settings) -> dict[str, object]:
    """What Faust passes to its aiokafka consumer and producer for these settings."""
    app = faust.App("t", broker_credentials=faust_credentials(s.kafka), autodiscover=False)
    return dict(credentials_to_aiokafka_auth(app.conf.broker_credentials))


def ca_names(context: object) -> list[str]:
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    return [dict(x[0] for x in c["subject"])["commonName"] for c in context.get_ca_certs()]


def test_sasl_scram_over_tls_reaches_both_kinds_of_client(tmp_path: Path, ca: Path) -> None:
    s = settings(
        tmp_path,
        f'security_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-512"\n'
        f'sasl_username = "funnel-svc"\nsasl_password_env = "KAFKA_PW"\nssl_cafile = "{ca}"\n',
        KAFKA_PW=PASSWORD,
    )
    for given in (client_kwargs(s.kafka), as_faust_gives_aiokafka(s)):
        assert given["security_protocol"] == "SASL_SSL"
        assert given["sasl_mechanism"] == "SCRAM-SHA-512"
        assert given["sasl_plain_username"] == "funnel-svc"
        assert given["sasl_plain_password"] == PASSWORD
        assert ca_names(given["ssl_context"]) == ["funnel-test-ca"]
    assert PASSWORD not in repr(s) and PASSWORD not in s.model_dump_json()


def test_sasl_plaintext_has_no_tls(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        'security_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "SCRAM-SHA-256"\n'
        'sasl_username = "u"\nsasl_password_env = "KAFKA_PW"\n',
        KAFKA_PW=PASSWORD,
    )
    kwargs = client_kwargs(s.kafka)
    assert "ssl_context" not in kwargs
    faust_side = as_faust_gives_aiokafka(s)
    assert faust_side["ssl_context"] is None
    for given in (kwargs, faust_side):
        assert given["security_protocol"] == "SASL_PLAINTEXT"
        assert (given["sasl_mechanism"], given["sasl_plain_password"]) == (
            "SCRAM-SHA-256",
            PASSWORD,
        )


def test_tls_from_the_environment_overrides_the_file(tmp_path: Path, ca: Path) -> None:
    s = settings(
        tmp_path,
        'security_protocol = "PLAINTEXT"\n',
        FUNNEL_KAFKA_SECURITY_PROTOCOL="SSL",
        FUNNEL_KAFKA_SSL_CAFILE=str(ca),
    )
    for given in (client_kwargs(s.kafka), as_faust_gives_aiokafka(s)):
        assert given["security_protocol"] == "SSL"
        assert ca_names(given["ssl_context"]) == ["funnel-test-ca"]


def test_plaintext_by_default() -> None:
    s = load_settings(environ={})
    assert client_kwargs(s.kafka) == {"security_protocol": "PLAINTEXT"}
    assert as_faust_gives_aiokafka(s) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("kafka", "needle"),
    [
        ('sasl_password = "x"\n', "kafka.sasl_password"),
        (
            'security_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\nsasl_username = "u"\n'
            'sasl_password_env = "UNSET_PW_VARIABLE"\n',
            "UNSET_PW_VARIABLE",
        ),
    ],
)
def test_a_password_in_the_file_or_a_missing_variable_is_refused(
    tmp_path: Path, kafka: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        settings(tmp_path, kafka)
