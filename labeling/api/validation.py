"""Request validation for the annotation loop without a serializer instance per request.

A DRF serializer deep-copies its declared fields every time it is instantiated, which costs
more than the rest of a "next item" request. The fields themselves validate statelessly, so
`InputValidator` binds them once (through one serializer instance made at import time) and runs
them on each request's data, with DRF's own semantics (required, defaults, nulls, limits) and
its error shape: ``{"field": ["message"]}``. Only for serializers made of plain fields: one
with its own ``validate`` or ``validate_<field>`` methods is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.fields import SkipField
from rest_framework.settings import api_settings


class InputValidator:
    def __init__(self, serializer_class: type[serializers.Serializer]) -> None:
        own = [
            name
            for name in vars(serializer_class)
            if name == "validate" or name.startswith("validate_")
        ]
        if own:
            raise TypeError(f"{serializer_class.__name__} has its own validation: {own}")
        self.fields = [f for f in serializer_class().fields.values() if not f.read_only]

    def validate(self, data) -> dict:
        if not isinstance(data, Mapping):
            message = serializers.Serializer.default_error_messages["invalid"].format(
                datatype=type(data).__name__
            )
            raise ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [ErrorDetail(message, code="invalid")]}
            )
        values, errors = {}, {}
        for field in self.fields:
            try:
                values[field.source] = field.run_validation(field.get_value(data))
            except ValidationError as exc:
                errors[field.field_name] = exc.detail
            except SkipField:
                pass
        if errors:
            raise ValidationError(errors)
        return values
