"""Labeling functions in the database: create, validate, try on a sample, apply as a job,
re-run only what changed, analysis against human labels."""

import pytest

from labeling.errors import ApplicationError
from labeling.models import Job, Prediction
from tests.weak_supervision.conftest import make_items
from weak_supervision import registry
from weak_supervision.models import LabelingFunction, LFVote
from weak_supervision.selectors import lf_analysis, vote_matrix
from weak_supervision.services.apply import apply_job_create, apply_run, lfs_stale
from weak_supervision.services.lfs import lf_create, lf_try_sample, lf_update

TEXTS = [
    "WIN a free prize now, call 0900",
    "are we still on for lunch",
    "free entry to win cash",
    "ok see you at home",
    "",
    "call me later",
]
HUMAN = {0: "spam", 1: "ham", 3: "ham"}


def _run(job):
    return apply_run(job_id=job.pk)


@pytest.fixture
def items(spam_project):
    return make_items(spam_project, TEXTS, human=HUMAN)


def test_create_rejects_an_invalid_regex_naming_the_field(spam_project):
    with pytest.raises(ApplicationError) as info:
        lf_create(
            project=spam_project,
            name="bad",
            kind="regex",
            config={"label": "spam", "pattern": "(unclosed"},
        )
    assert info.value.extra["field"] == "pattern"
    assert "Invalid regular expression" in info.value.message
    assert not LabelingFunction.objects.exists()


def test_create_rejects_duplicate_names_and_unknown_python_functions(spam_project):
    lf_create(
        project=spam_project, name="a", kind="keyword", config={"label": "spam", "keywords": ["x"]}
    )
    with pytest.raises(ApplicationError, match="already exists"):
        lf_create(
            project=spam_project,
            name="a",
            kind="keyword",
            config={"label": "spam", "keywords": ["y"]},
        )
    with pytest.raises(ApplicationError, match="No Python labeling function"):
        lf_create(project=spam_project, name="p", kind="python", config={"function": "nope"})


def test_try_on_a_sample_shows_votes_and_accuracy_against_human_labels(spam_project, items):
    result = lf_try_sample(
        project=spam_project, kind="keyword", config={"label": "spam", "keywords": ["win", "free"]}
    )
    assert result["sample_size"] == len(TEXTS)
    votes = {row["item_id"]: row["vote"] for row in result["rows"]}
    assert votes[items[0].pk] == "spam"
    assert votes[items[2].pk] == "spam"
    assert votes[items[1].pk] is None
    assert result["votes"] == 2
    assert result["judged"] == 1
    assert result["accuracy"] == 1.0
    assert not LabelingFunction.objects.exists()  # nothing saved


def test_apply_stores_sparse_votes_with_versions_and_reruns_only_the_edited_function(
    spam_project, items
):
    spam = lf_create(
        project=spam_project,
        name="spam words",
        kind="keyword",
        config={"label": "spam", "keywords": ["win", "free"]},
    )
    ham = lf_create(
        project=spam_project,
        name="chat",
        kind="regex",
        config={"label": "ham", "pattern": r"\b(lunch|home|later)\b"},
    )
    job = apply_job_create(project=spam_project)
    assert job.params["lf_ids"] == [spam.pk, ham.pk]
    job = _run(job)
    assert job.status == Job.Status.SUCCEEDED
    votes = set(LFVote.objects.values_list("lf_id", "item_id", "label", "lf_version"))
    assert votes == {
        (spam.pk, items[0].pk, "spam", "1"),
        (spam.pk, items[2].pk, "spam", "1"),
        (ham.pk, items[1].pk, "ham", "1"),
        (ham.pk, items[3].pk, "ham", "1"),
        (ham.pk, items[5].pk, "ham", "1"),
    }  # abstentions are not stored
    assert lfs_stale(project=spam_project) == []
    with pytest.raises(ApplicationError, match="up to date"):
        apply_job_create(project=spam_project)

    # when one function is edited, only it is stale and re-run, at its new version
    lf_update(lf=spam, config={"label": "spam", "keywords": ["prize"]})
    spam.refresh_from_db()
    assert spam.version == 2
    job = apply_job_create(project=spam_project)
    assert job.params["lf_ids"] == [spam.pk]
    _run(job)
    assert set(LFVote.objects.filter(lf=spam).values_list("item_id", "lf_version")) == {
        (items[0].pk, "2")
    }
    assert LFVote.objects.filter(lf=ham).count() == 3  # untouched
    # editing only the name or description does not change the version
    lf_update(lf=spam, name="prize", description="renamed")
    spam.refresh_from_db()
    assert spam.version == 2
    assert lfs_stale(project=spam_project) == []


def test_apply_resumes_from_its_cursor(spam_project, items, settings):
    settings.WS_APPLY_BATCH_SIZE = 2
    lf = lf_create(
        project=spam_project,
        name="w",
        kind="keyword",
        config={"label": "spam", "keywords": ["win", "free", "call"]},
    )
    job = apply_job_create(project=spam_project)
    # a first slice that runs out of time after one batch
    job = apply_run(job_id=job.pk, deadline=0)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert job.cursor["after_id"] == items[1].pk
    assert LFVote.objects.count() == 1
    job = apply_run(job_id=job.pk)
    assert job.status == Job.Status.SUCCEEDED
    assert set(LFVote.objects.filter(lf=lf).values_list("item_id", flat=True)) == {
        items[0].pk,
        items[2].pk,
        items[5].pk,
    }


def test_a_pattern_too_slow_is_stopped_and_reported_without_votes(spam_project, settings):
    settings.WS_REGEX_TIMEOUT_SECONDS = 0.005
    make_items(spam_project, ["a" * 60 + "b" + str(n) for n in range(40)])
    slow = lf_create(
        project=spam_project,
        name="slow",
        kind="regex",
        config={"label": "spam", "pattern": r"(a|aa)+$"},
    )
    job = _run(apply_job_create(project=spam_project))
    # nothing could be applied: the job fails and names the function
    assert job.status == Job.Status.FAILED
    assert "slow" in job.message
    assert "timed out" in job.error
    slow.refresh_from_db()
    assert slow.applied_version == ""
    assert "timed out" in slow.applied_stats["error"]
    assert not LFVote.objects.filter(lf=slow).exists()
    row = next(r for r in lf_analysis(project=spam_project)["functions"] if r["id"] == slow.pk)
    assert row["error"]
    assert row["stale"]


def test_python_functions_registered_in_code_vote(spam_project, items):
    @registry.labeling_function("short_is_ham")
    def short_is_ham(text):
        return "ham" if 0 < len(text) < 14 else None

    try:
        lf = lf_create(
            project=spam_project, name="short", kind="python", config={"function": "short_is_ham"}
        )
        _run(apply_job_create(project=spam_project))
        assert set(LFVote.objects.filter(lf=lf).values_list("item_id", flat=True)) == {items[5].pk}
        lf.refresh_from_db()
        assert lf.applied_version.startswith("1.py1-")
    finally:
        registry.unregister("short_is_ham")


def test_classifier_function_reads_the_newest_model_predictions(spam_project, items):
    for item, (label, conf) in zip(
        items[:3], [("spam", 0.95), ("ham", 0.99), ("spam", 0.6)], strict=True
    ):
        Prediction.objects.create(
            item=item,
            project=spam_project,
            source_kind="model",
            source_id="clf",
            source_version="7",
            labels=[label],
            confidence=conf,
        )
    lf = lf_create(project=spam_project, name="clf", kind="classifier", config={"threshold": 0.9})
    _run(apply_job_create(project=spam_project))
    assert set(LFVote.objects.filter(lf=lf).values_list("item_id", "label", "lf_version")) == {
        (items[0].pk, "spam", "1.mclf@7"),
        (items[1].pk, "ham", "1.mclf@7"),
    }
    # a new model version makes the function stale
    Prediction.objects.create(
        item=items[2],
        project=spam_project,
        source_kind="model",
        source_id="clf",
        source_version="8",
        labels=["spam"],
        confidence=0.97,
    )
    assert [x.pk for x in lfs_stale(project=spam_project)] == [lf.pk]


def test_analysis_reports_coverage_overlap_conflict_polarity_and_accuracy(spam_project, items):
    spam = lf_create(
        project=spam_project,
        name="s",
        kind="keyword",
        config={"label": "spam", "keywords": ["win", "free", "lunch"]},
    )
    ham = lf_create(
        project=spam_project,
        name="h",
        kind="keyword",
        config={"label": "ham", "keywords": ["lunch", "home"]},
    )
    _run(apply_job_create(project=spam_project))
    analysis = lf_analysis(project=spam_project)
    rows = {r["id"]: r for r in analysis["functions"]}
    assert rows[spam.pk]["coverage"] == pytest.approx(3 / 6)
    assert rows[spam.pk]["overlap"] == pytest.approx(1 / 6)  # "lunch"
    assert rows[spam.pk]["conflict"] == pytest.approx(1 / 6)
    assert rows[spam.pk]["polarity"] == ["spam"]
    assert rows[spam.pk]["gold_votes"] == 2  # items 0 (spam) and 1 (ham)
    assert rows[spam.pk]["accuracy"] == 0.5
    assert rows[ham.pk]["accuracy"] == 1.0
    assert analysis["totals"]["human_labels"] == 3
    matrix = vote_matrix(project=spam_project)
    assert matrix.L.shape == (6, 2)
