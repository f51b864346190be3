"""The annotation loop validates requests with the serializers' own fields, bound once: the
results and errors must be exactly what the serializer itself gives."""

import pytest
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from labeling.api.validation import InputValidator
from labeling.api.views.annotate import ItemNextApi, ItemSubmitApi

CASES = [
    (ItemSubmitApi.InputSerializer, {"labels": ["pos"]}),
    (ItemSubmitApi.InputSerializer, {"labels": ["pos"], "time_spent_ms": 1200}),
    (ItemSubmitApi.InputSerializer, {"labels": ["pos"], "suggestion_id": None}),
    (ItemSubmitApi.InputSerializer, {"labels": ["pos"], "suggestion_id": "7"}),
    (ItemSubmitApi.InputSerializer, {}),
    (ItemSubmitApi.InputSerializer, {"labels": "pos"}),
    (ItemSubmitApi.InputSerializer, {"labels": ["x" * 101]}),
    (ItemSubmitApi.InputSerializer, {"labels": ["pos"], "time_spent_ms": -1}),
    (ItemSubmitApi.InputSerializer, {"labels": [], "time_spent_ms": "soon"}),
    (ItemSubmitApi.InputSerializer, ["pos"]),
    (ItemNextApi.InputSerializer, {}),
    (ItemNextApi.InputSerializer, {"exclude": [3, "4"]}),
    (ItemNextApi.InputSerializer, {"exclude": "3"}),
    (ItemNextApi.InputSerializer, {"exclude": list(range(1001))}),
]


@pytest.mark.parametrize(("serializer_class", "data"), CASES)
def test_validator_agrees_with_the_serializer(serializer_class, data):
    serializer = serializer_class(data=data)
    validator = InputValidator(serializer_class)
    if serializer.is_valid():
        assert validator.validate(data) == serializer.validated_data
    else:
        with pytest.raises(ValidationError) as caught:
            validator.validate(data)
        assert caught.value.detail == serializer.errors


def test_serializers_with_their_own_validation_are_refused():
    class Checked(serializers.Serializer):
        n = serializers.IntegerField()

        def validate_n(self, value):
            return value

    with pytest.raises(TypeError, match="own validation"):
        InputValidator(Checked)
