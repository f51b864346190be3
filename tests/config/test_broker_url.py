"""The embedded broker's URL names a host, so kombu does not warn "No hostname was supplied"
at every `make run` (the worker describes its connection at start)."""

import logging

import pytest
from kombu import Connection

from config.celery_app import app
from config.settings.base import broker_url_with_host


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("filesystem://", "filesystem://localhost/"),
        ("filesystem:///", "filesystem://localhost/"),
        ("memory://", "memory://localhost/"),
        ("filesystem://localhost/", "filesystem://localhost/"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://", "redis://"),  # a real server's URL is the operator's to complete
    ],
)
def test_serverless_broker_urls_get_a_host(given, expected):
    assert broker_url_with_host(given) == expected


@pytest.mark.parametrize("url", ["filesystem://", "memory://"])
def test_kombu_warns_about_the_bare_url_and_not_about_ours(url, caplog, tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="kombu.connection"):
        Connection(url, transport_options=options).as_uri()
    assert "No hostname was supplied" in caplog.text  # the cause, as kombu reports it

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kombu.connection"):
        uri = Connection(broker_url_with_host(url), transport_options=options).as_uri()
    assert "No hostname" not in caplog.text
    assert "localhost" in uri


def test_the_configured_celery_connection_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="kombu.connection"):
        app.connection().as_uri()
        app.connection().info()
    assert "No hostname" not in caplog.text
