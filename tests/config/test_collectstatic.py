"""The production static pipeline (WhiteNoise's manifest storage) accepts every asset: a
vendored file that points at a missing source map or image fails `collectstatic`, and with it
`make run` and the Docker build."""

from django.core.management import call_command


def test_collectstatic_with_the_manifest_storage_succeeds(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

    call_command("collectstatic", interactive=False, verbosity=0)

    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert list((tmp_path / "static" / "vendor" / "chartjs").glob("chart.umd.min.*.js"))
