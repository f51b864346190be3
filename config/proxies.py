"""Forwarded headers are believed only from the reverse proxies the operator names.

`X-Forwarded-Proto` decides `request.is_secure()` (SECURE_PROXY_SSL_HEADER: secure cookies,
the HTTPS redirect, HSTS) and `X-Forwarded-For` the client address that login throttling and
DRF's throttles count. A client that reaches gunicorn directly could set either, so
`TrustedProxyMiddleware`, first in MIDDLEWARE (and in the annotation fast path), removes every
forwarding header from a request whose peer (REMOTE_ADDR) is not in TRUSTED_PROXIES. From a
trusted proxy it keeps `X-Forwarded-Proto` and replaces REMOTE_ADDR and `X-Forwarded-For` by
the client address: the right-most address of the chain that is not itself a trusted proxy (the
left part of the header is whatever the client sent). Every later reader (Django, DRF's
`get_ident`, django-axes) then sees that one address; `client_ip(request)` returns it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers a client could use to pass for a proxy. Django reads none of the others unless told
# to (USE_X_FORWARDED_HOST / _PORT are off), but nothing downstream should see them either.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)


def trusted_networks_parse(values: Iterable[str]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries (addresses or CIDR blocks) as networks; a bad one is an error
    at start-up, not a proxy silently distrusted."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {value!r} is not an IP address or network."
            ) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return trusted_networks_parse(values)


def _trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def is_trusted_proxy(address: str, networks: tuple[Network, ...] | None = None) -> bool:
    parsed = _address(address or "")
    if parsed is None:
        return False
    networks = _trusted_networks() if networks is None else networks
    return any(parsed in network for network in networks)


def forwarded_client(*, remote_addr: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client address of a request from `remote_addr` carrying `X-Forwarded-For`: walk the
    chain from the right (the hop nearest to us) past trusted proxies; the first address that
    is not one is the client. A malformed entry stops the walk at the last good hop."""
    client = remote_addr
    if not is_trusted_proxy(remote_addr, networks):
        return client
    for hop in reversed([part for part in forwarded_for.split(",") if part.strip()]):
        parsed = _address(hop)
        if parsed is None:
            break
        client = str(parsed)
        if not any(parsed in network for network in networks):
            break
    return client


# Set in the environ once it has been cleaned: after a rewrite REMOTE_ADDR is the client, and a
# second pass (the annotation fast path hands a declined request to Django) would then drop the
# proxy's X-Forwarded-Proto. Not an HTTP_ key, so no client can send it.
_CLEANED = "flywheel.forwarding_headers_cleaned"


def forwarding_headers_clean(meta: dict) -> None:
    """Apply the rule above to a WSGI environ / request.META in place (once)."""
    if meta.get(_CLEANED):
        return
    meta[_CLEANED] = True
    networks = _trusted_networks()
    remote_addr = meta.get("REMOTE_ADDR", "")
    if not is_trusted_proxy(remote_addr, networks):
        for name in FORWARDING_HEADERS:
            meta.pop(name, None)
        return
    forwarded_for = meta.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded_for:
        client = forwarded_client(
            remote_addr=remote_addr, forwarded_for=forwarded_for, networks=networks
        )
        meta["REMOTE_ADDR"] = client
        meta["HTTP_X_FORWARDED_FOR"] = client


def client_ip(request: HttpRequest) -> str:
    """The client's address, honouring X-Forwarded-For from trusted proxies only (for login
    throttling, logs, anything that counts per address). Correct with or without the
    middleware having run."""
    meta = request.META
    return forwarded_client(
        remote_addr=meta.get("REMOTE_ADDR", ""),
        forwarded_for=meta.get("HTTP_X_FORWARDED_FOR", ""),
        networks=_trusted_networks(),
    )


class TrustedProxyMiddleware:
    """First in MIDDLEWARE: nothing after it sees a forwarding header it should not believe."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        _trusted_networks()  # a malformed TRUSTED_PROXIES stops the process at start-up

    def __call__(self, request: HttpRequest) -> HttpResponse:
        forwarding_headers_clean(request.META)
        return self.get_response(request)
