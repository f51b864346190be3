"""Factories and helpers for the flywheel tests: projects whose texts a classifier can learn."""

from __future__ import annotations

import random

from labeling.models import Item
from tests.factories import ItemFactory, ProjectFactory

TOPICS = {
    "sport": ["match", "goal", "league", "striker", "cup", "coach", "season", "score"],
    "tech": ["software", "chip", "phone", "internet", "startup", "computer", "code", "app"],
    "politics": ["election", "minister", "vote", "party", "parliament", "policy", "law", "mp"],
}


def topic_text(topic: str, n: int, rng: random.Random) -> str:
    words = rng.sample(TOPICS[topic], 4)
    return f"{' '.join(words)} item {n} {rng.choice(['today', 'again', 'news', 'report'])}"


def topic_project(*, per_topic: int = 30, seed: int = 0, **project_kwargs):
    """A project with labels sport/tech/politics and `per_topic` unlabeled items of each; the
    true topic is in `metadata["topic"]`."""
    rng = random.Random(seed)
    project = ProjectFactory(labels=list(TOPICS), **project_kwargs)
    for n in range(per_topic):
        for topic in TOPICS:
            ItemFactory(project=project, text=topic_text(topic, n, rng), metadata={"topic": topic})
    return project


def label_items(items, *, machine: bool = False) -> None:
    """Give items their true topic as a final label (as the core would for k == 1)."""
    for item in items:
        item.final_labels = [item.metadata["topic"]]
        item.final_confidence = 1.0
        item.final_lineage = {"method": "single_annotator", "version": 1, "machine": machine}
        item.status = Item.Status.DONE
    Item.objects.bulk_update(items, ["final_labels", "final_confidence", "final_lineage", "status"])
