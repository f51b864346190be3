from django.apps import AppConfig


class WeakSupervisionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "weak_supervision"
    verbose_name = "Pre-labels (labeling functions, label model, LLM)"
