"""Per-project LLM API keys: plaintext column -> Fernet token bound to the endpoint.

Existing keys are sealed for the endpoint the project used when migrating (its own base URL,
else LLM_BASE_URL); a key whose endpoint cannot be parsed is bound to nothing, so it is never
sent (set it again). Reversible: unsealing writes the plaintext back.
"""

from django.conf import settings
from django.db import migrations, models


def _endpoint(row) -> str:
    from weak_supervision.llm import normalise_base_url

    try:
        return normalise_base_url(row.llm_base_url or settings.LLM_BASE_URL or "")
    except ValueError:
        return ""


def seal_keys(apps, schema_editor):
    from weak_supervision.crypto import seal

    Settings = apps.get_model("weak_supervision", "WeakSupervisionSettings")
    for row in Settings.objects.exclude(llm_api_key="").iterator():
        row.llm_api_key_sealed = seal(row.llm_api_key, endpoint=_endpoint(row))
        row.llm_api_key = ""
        row.save(update_fields=["llm_api_key_sealed", "llm_api_key"])


def unseal_keys(apps, schema_editor):
    from weak_supervision.crypto import unseal

    Settings = apps.get_model("weak_supervision", "WeakSupervisionSettings")
    for row in Settings.objects.exclude(llm_api_key_sealed="").iterator():
        bound = unseal(row.llm_api_key_sealed)
        row.llm_api_key = bound.secret[:500] if bound else ""
        row.save(update_fields=["llm_api_key"])


class Migration(migrations.Migration):
    dependencies = [("weak_supervision", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="weaksupervisionsettings",
            name="llm_api_key_sealed",
            field=models.TextField(
                blank=True,
                editable=False,
                help_text="The project's own API key, encrypted and bound to the endpoint it was "
                "saved for (weak_supervision.crypto); set and cleared only through the settings "
                "service. Never shown back.",
            ),
        ),
        migrations.RunPython(seal_keys, unseal_keys, elidable=False),
        migrations.RemoveField(model_name="weaksupervisionsettings", name="llm_api_key"),
    ]
