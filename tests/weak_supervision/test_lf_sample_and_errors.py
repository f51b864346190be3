"""'Try on a sample' draws a seeded uniform sample of every item, so its coverage estimates the
applied coverage; a Python function that raises reports the error (in the try and in the apply
job), and a classifier function's job counts the items and votes it produced."""

import hashlib

import pytest

from labeling.models import Item, Job, Prediction
from tests.weak_supervision.conftest import make_items
from weak_supervision import registry
from weak_supervision.models import LFVote
from weak_supervision.selectors import lf_analysis
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.lfs import lf_create, lf_try_sample

SPAM_WORDS = {"label": "spam", "keywords": ["prize"]}


def _items_where_coverage_depends_on_priority(project, n=1000):
    """The queue's head (high priority) never says "prize"; the tail always does; every tenth
    item is a gold item at the very bottom of the priority order. Applied coverage: 50%."""
    rows = []
    for i in range(n):
        tail = i % 2 == 1
        text = f"claim your prize number {i}" if tail else f"meeting notes number {i}"
        rows.append(
            Item(
                project=project,
                external_id=f"p{i}",
                text=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                priority=-1000.0 if i % 10 == 9 else (1000.0 - i if not tail else -i),
                is_gold=i % 10 == 9,
                gold_labels=["spam"] if i % 10 == 9 else None,
            )
        )
    Item.objects.bulk_create(rows)


def test_the_sample_is_uniform_over_all_items_so_its_coverage_estimates_the_applied_one(
    spam_project,
):
    # Given a project whose coverage differs by priority (the queue's head never matches)
    _items_where_coverage_depends_on_priority(spam_project)

    # When a keyword function is tried on a sample, then applied to every item
    tried = lf_try_sample(project=spam_project, kind="keyword", config=SPAM_WORDS)
    lf = lf_create(project=spam_project, name="prize", kind="keyword", config=SPAM_WORDS)
    apply_run(job_id=apply_job_create(project=spam_project).pk)
    applied = next(r for r in lf_analysis(project=spam_project)["functions"] if r["id"] == lf.pk)

    # Then the sample is 100 distinct items of the 1,000, gold items among them, and the
    # sample's coverage (with its interval) estimates the applied coverage of 50%
    ids = [row["item_id"] for row in tried["rows"]]
    assert tried["sample_size"] == 100
    assert tried["population"] == 1000
    assert len(set(ids)) == 100
    assert Item.objects.filter(pk__in=ids, is_gold=True).exists()
    assert applied["coverage"] == pytest.approx(0.5)
    assert tried["coverage_low"] <= applied["coverage"] <= tried["coverage_high"]
    assert abs(tried["coverage"] - applied["coverage"]) < 0.15


def test_the_same_seed_draws_the_same_sample_and_another_seed_another(spam_project):
    _items_where_coverage_depends_on_priority(spam_project, n=400)

    def sample(seed):
        result = lf_try_sample(project=spam_project, kind="keyword", config=SPAM_WORDS, seed=seed)
        return [row["item_id"] for row in result["rows"]]

    assert sample(None) == sample(0)
    assert sample(0) == sample(0)
    assert sample(1) != sample(0)


def test_sparse_ids_still_give_a_full_sample_of_distinct_items(spam_project):
    # Given ids with large holes (most items deleted)
    items = make_items(spam_project, [f"text {n}" for n in range(1000)])
    Item.objects.filter(pk__in=[i.pk for i in items if i.pk % 20]).delete()
    left = set(Item.objects.filter(project=spam_project).values_list("pk", flat=True))

    result = lf_try_sample(
        project=spam_project, kind="keyword", config={"label": "ham", "keywords": ["x"]}, size=30
    )

    ids = [row["item_id"] for row in result["rows"]]
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) <= left


@pytest.fixture
def raising_function():
    @registry.labeling_function("divides_by_zero")
    def divides_by_zero(text):
        return "spam" if 1 / 0 else None

    @registry.labeling_function("fails_on_short")
    def fails_on_short(text):
        if len(text) < 10:
            raise KeyError("short")
        return "spam"

    yield
    registry.unregister("divides_by_zero")
    registry.unregister("fails_on_short")


def test_a_python_function_that_raises_reports_the_error_in_the_try(spam_project, raising_function):
    make_items(spam_project, ["one text", "another text", "a third text"])

    result = lf_try_sample(
        project=spam_project, kind="python", config={"function": "divides_by_zero"}
    )

    assert result["errors"] == 3
    assert result["votes"] == 0
    assert "raised on 3 of 3 items" in result["error"]
    assert "ZeroDivisionError: division by zero" in result["error"]
    assert "Traceback" not in result["error"]


def test_an_apply_job_whose_only_function_raised_everywhere_fails_with_the_error(
    spam_project, raising_function
):
    make_items(spam_project, ["one text", "another text", "a third text"])
    lf = lf_create(
        project=spam_project, name="zero", kind="python", config={"function": "divides_by_zero"}
    )

    job = apply_run(job_id=apply_job_create(project=spam_project).pk)

    assert job.status == Job.Status.FAILED
    assert "zero: The function raised on 3 of 3 items" in job.error
    assert "ZeroDivisionError: division by zero" in job.error
    assert "Traceback" not in job.error
    assert job.result["functions"][str(lf.pk)]["errors"] == 3
    lf.refresh_from_db()
    assert lf.applied_version == ""  # still to apply once fixed
    assert "ZeroDivisionError" in lf.applied_stats["error"]


def test_a_function_that_raised_on_some_items_succeeds_with_a_per_function_count(
    spam_project, raising_function
):
    make_items(spam_project, ["short", "a much longer text", "tiny", "another long text"])
    lf = lf_create(
        project=spam_project, name="picky", kind="python", config={"function": "fails_on_short"}
    )

    job = apply_run(job_id=apply_job_create(project=spam_project).pk)

    assert job.status == Job.Status.SUCCEEDED
    assert "Applied 1 of 1 function(s) to 4 items: 2 votes" in job.message
    assert "picky: The function raised on 2 of 4 items; first problem: KeyError: 'short'" in (
        job.message
    )
    assert LFVote.objects.filter(lf=lf).count() == 2
    lf.refresh_from_db()
    assert lf.applied_version  # applied, with a warning
    row = next(r for r in lf_analysis(project=spam_project)["functions"] if r["id"] == lf.pk)
    assert "raised on 2 of 4" in row["warning"]


def test_a_classifier_function_job_counts_its_items_and_votes(spam_project):
    items = make_items(spam_project, [f"message {n}" for n in range(6)])
    for item in items[:4]:
        Prediction.objects.create(
            item=item,
            project=spam_project,
            source_kind="model",
            source_id="clf",
            source_version="3",
            labels=["spam"],
            confidence=0.95,
        )
    lf_create(project=spam_project, name="clf", kind="classifier", config={"threshold": 0.9})

    job = apply_run(job_id=apply_job_create(project=spam_project).pk)

    assert job.status == Job.Status.SUCCEEDED
    assert job.message == "Applied 1 of 1 function(s) to 6 items: 4 votes"
    assert job.progress_done == job.progress_total == 6
