"""X-Forwarded-Proto and X-Forwarded-For are believed only from TRUSTED_PROXIES
(config/proxies.py): a client talking to gunicorn directly cannot pass for HTTPS or for
another address."""

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory

from config.proxies import (
    TrustedProxyMiddleware,
    client_ip,
    forwarded_client,
    trusted_networks_parse,
)

PROXY = "10.0.0.9"
CLIENT = "198.51.100.7"


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = [PROXY, "127.0.0.1", "::1"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _through_middleware(**meta):
    seen = {}

    def view(request):
        seen["secure"] = request.is_secure()
        seen["remote"] = request.META["REMOTE_ADDR"]
        seen["xff"] = request.META.get("HTTP_X_FORWARDED_FOR")
        seen["client_ip"] = client_ip(request)
        seen["forwarded_host"] = request.META.get("HTTP_X_FORWARDED_HOST")
        return HttpResponse()

    TrustedProxyMiddleware(view)(RequestFactory().get("/", **meta))
    return seen


@pytest.mark.usefixtures("behind_proxy")
def test_a_direct_client_cannot_claim_https_or_another_address():
    seen = _through_middleware(
        REMOTE_ADDR=CLIENT,
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR="203.0.113.66",
        HTTP_X_FORWARDED_HOST="evil.example",
    )

    assert seen == {
        "secure": False,
        "remote": CLIENT,
        "xff": None,
        "client_ip": CLIENT,
        "forwarded_host": None,
    }


@pytest.mark.usefixtures("behind_proxy")
def test_the_trusted_proxy_is_believed_and_a_spoofed_hop_ignored():
    # The client sent "X-Forwarded-For: 203.0.113.66"; nginx appended the address it saw.
    seen = _through_middleware(
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR=f"203.0.113.66, {CLIENT}",
    )

    assert seen["secure"] is True
    assert (seen["remote"], seen["xff"], seen["client_ip"]) == (CLIENT, CLIENT, CLIENT)


def test_client_ip_without_the_middleware_reads_the_same_rule(settings):
    settings.TRUSTED_PROXIES = [PROXY]
    factory = RequestFactory()
    proxied = factory.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {CLIENT}")
    direct = factory.get("/", REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert (client_ip(proxied), client_ip(direct)) == (CLIENT, CLIENT)


def test_the_chain_is_walked_past_every_trusted_hop():
    networks = (ipaddress.ip_network("10.0.0.0/8"),)

    def walk(chain):
        return forwarded_client(remote_addr="10.0.0.9", forwarded_for=chain, networks=networks)

    assert walk(f"{CLIENT}, 10.1.1.1") == CLIENT
    assert walk("10.2.2.2, 10.1.1.1") == "10.2.2.2"  # all trusted: the farthest
    assert walk(f"junk, {CLIENT}") == CLIENT
    assert walk("not-an-ip") == "10.0.0.9"
    assert walk("[2001:db8::5]:4711") == "2001:db8::5"


def test_by_default_only_loopback_is_a_proxy():
    from config.settings import base

    assert base.TRUSTED_PROXIES == ["127.0.0.1", "::1"]


def test_a_malformed_entry_stops_the_process_at_start(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    with pytest.raises(ImproperlyConfigured, match=r"proxy\.internal"):
        TrustedProxyMiddleware(lambda request: HttpResponse())
    assert trusted_networks_parse(["10.0.0.1/8"])[0] == ipaddress.ip_network("10.0.0.0/8")


@pytest.mark.usefixtures("behind_proxy")
def test_login_throttling_counts_the_address_the_proxy_saw():
    from axes.helpers import get_client_ip_address

    factory = RequestFactory()
    proxied = factory.post("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"203.0.113.66, {CLIENT}")
    direct = factory.post("/", REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR="203.0.113.66")

    assert get_client_ip_address(proxied) == CLIENT
    assert get_client_ip_address(direct) == CLIENT
