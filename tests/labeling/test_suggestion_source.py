"""The source of a suggestion in the annotator's words (no database)."""

import pytest

from labeling.api.views.annotate import suggestion_source


@pytest.mark.parametrize(
    ("kind", "source_id", "version", "details", "words"),
    [
        (
            "model",
            "classifier:4",
            "3",
            {"model_version": 3, "train_size": 120, "label_count": 150},
            "model v3, trained on 120 labels",
        ),
        (
            "model",
            "classifier:4",
            "1",
            {"model_version": 1, "train_size": 1},
            "model v1, trained on 1 label",
        ),
        ("model", "classifier:4", "2", {}, "model v2"),  # scored before train_size was recorded
        (
            "zero_shot",
            "all-MiniLM-L6-v2",
            "1",
            {"label_set_version": 2},
            "zero-shot (label descriptions)",
        ),
        ("llm", "gpt-4o-mini", "7", {"prompt_version": 2}, "LLM gpt-4o-mini, prompt v2"),
        ("label_model", "dawid_skene", "5", {"run": 5, "votes": 3}, "label model (Dawid-Skene)"),
        ("label_model", "majority_vote", "5", {}, "label model (majority vote)"),
        ("lf", "mentions-goal", "2", {}, "labeling function mentions-goal"),
        ("import", "import:12", "12", {}, "imported"),
        ("model", "classifier:4", "3", None, "model v3"),
    ],
)
def test_each_source_is_said_in_words(kind, source_id, version, details, words):
    assert (
        suggestion_source(kind=kind, source_id=source_id, version=version, details=details) == words
    )
