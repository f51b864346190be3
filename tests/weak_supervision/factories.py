"""Factories of the pre-label app."""

import factory

from tests.factories import ProjectFactory
from weak_supervision.lf_eval import config_hash
from weak_supervision.models import LabelingFunction


class LabelingFunctionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelingFunction

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"lf-{n}")
    kind = LabelingFunction.Kind.KEYWORD
    config = factory.LazyAttribute(
        lambda o: {
            "label": "pos",
            "keywords": ["good"],
            "case_sensitive": False,
            "whole_word": True,
        }
    )
    config_hash = factory.LazyAttribute(lambda o: config_hash(kind=o.kind, config=o.config))
