"""The production stack (docker/compose.yml) reaches gunicorn only through its proxy, whose
address is the one Flywheel trusts for forwarded headers; the image holds every app."""

import re
from pathlib import Path

import yaml
from django.conf import settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _default(value: str) -> str:
    """`${NAME:-default}` as compose would expand it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_only_the_proxy_publishes_a_port_and_it_is_the_trusted_one():
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    services = compose["services"]

    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    assert _default(services["proxy"]["ports"][0]).endswith(":80")

    proxy_ip = _default(services["proxy"]["networks"]["default"]["ipv4_address"])
    trusted = _default(services["web"]["environment"]["TRUSTED_PROXIES"]).split(",")
    assert trusted == [proxy_ip, "127.0.0.1", "::1"]  # loopback: the health check
    subnet = _default(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert proxy_ip.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]

    nginx = (DOCKER / "nginx.conf").read_text()
    assert "server web:8000;" in nginx
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx


def test_the_image_copies_every_app():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    ours = [app for app in settings.INSTALLED_APPS if (DOCKER.parent / app).is_dir()]
    assert ours, "no project app found"
    for app in ours:
        assert f"COPY {app} ./{app}" in dockerfile, app
