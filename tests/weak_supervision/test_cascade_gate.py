"""The gate in front of auto-acceptance, as pure functions: collapse against the prior,
accuracy on known answers per kind and together, too few checks (the one refusal a manager may
lift)."""

import pytest

from weak_supervision.cascade_gate import (
    COLLAPSED,
    LOW_ACCURACY,
    TOO_FEW_CHECKS,
    GateConfig,
    class_collapse,
    class_prior,
    gate,
)

LABELS = ["spam", "ham"]
CONFIG = GateConfig(min_accuracy=0.9, min_checks=30, max_odds_ratio=10.0)
# SMS spam-like: 13% spam among known answers.
TRUTH = {"spam": 26, "ham": 174}


def judge(predicted, checks, truth=TRUTH, **kwargs):
    return gate(
        source="The label model",
        labels=LABELS,
        predicted_counts=predicted,
        truth_counts=truth,
        checks=checks,
        config=CONFIG,
        **kwargs,
    )


def test_prior_comes_from_known_answers_when_there_are_enough_else_uniform():
    prior, source = class_prior(LABELS, TRUTH, min_checks=30)
    assert source == "labels"
    assert prior == pytest.approx([27 / 202, 175 / 202])
    assert class_prior(LABELS, {"spam": 3, "ham": 20}, min_checks=30) == ([0.5, 0.5], "uniform")


def test_a_model_that_labels_everything_one_class_is_refused():
    # 3,497 predictions, all ham; it even looks accurate on a ham-heavy check set
    verdict = judge({"ham": 3497}, {"human": (200, 190)})
    assert not verdict.ok
    assert verdict.codes == [COLLAPSED]
    assert "predicts 'ham' for 100.0% of 3,497 items" in verdict.reasons[0]
    assert not verdict.overridable


def test_the_healthy_imbalanced_model_passes():
    # 82% ham against an 87% ham prior, 99% right where it is confident
    verdict = judge({"ham": 2860, "spam": 637}, {"human": (200, 198), "gold": (40, 40)})
    assert verdict.ok, verdict.reasons
    assert verdict.codes == []


def test_odds_ratio_means_the_same_on_balanced_and_imbalanced_priors():
    balanced = class_collapse(LABELS, {"spam": 95, "ham": 5}, [0.5, 0.5], max_odds_ratio=10)
    assert balanced["collapsed"]["label"] == "spam"  # 95% vs 50%: odds 19 vs 1
    imbalanced = class_collapse(LABELS, {"spam": 5, "ham": 95}, [0.13, 0.87], max_odds_ratio=10)
    assert imbalanced["collapsed"] is None  # 95% ham vs 87%: odds 19 vs 6.7


def test_low_accuracy_on_gold_alone_refuses_even_when_humans_agree():
    verdict = judge({"ham": 300, "spam": 60}, {"gold": (40, 25), "human": (400, 398)})
    assert verdict.codes == [LOW_ACCURACY]
    assert "62.5% on gold items (40 items" in verdict.reasons[0]
    assert "other human labels" not in verdict.reasons[0]


def test_kinds_too_small_alone_are_judged_together():
    # 20 + 20 checks: neither kind reaches 30, together they do (and fail)
    verdict = judge({"ham": 300, "spam": 60}, {"gold": (20, 15), "verification": (20, 15)})
    assert verdict.codes == [LOW_ACCURACY]
    assert "on all known answers (40 items" in verdict.reasons[0]


def test_too_few_checks_refuses_unless_a_manager_accepts_without_checks():
    verdict = judge({"ham": 300, "spam": 60}, {"human": (12, 12)})
    assert verdict.codes == [TOO_FEW_CHECKS]
    assert not verdict.ok
    assert verdict.overridable
    assert "only 12 gold or human-labelled items" in verdict.reasons[0]
    lifted = judge({"ham": 300, "spam": 60}, {"human": (12, 12)}, accept_unverified=True)
    assert lifted.ok
    assert lifted.as_dict()["accept_unverified"] is True


def test_accepting_without_checks_never_lifts_a_collapse():
    # No known answers at all: the prior is uniform, and 100% ham is far above 50%
    verdict = judge({"ham": 3497}, {}, truth={}, accept_unverified=True)
    assert not verdict.ok
    assert verdict.codes == [COLLAPSED, TOO_FEW_CHECKS]
    assert "uniform prior of 50.0%" in verdict.reasons[0]


def test_the_verdict_is_json_ready():
    import json

    verdict = judge({"ham": 3497}, {"human": (200, 190)})
    data = json.loads(json.dumps(verdict.as_dict(), allow_nan=False))
    assert data["collapse"]["collapsed"]["label"] == "ham"
    assert [row["kind"] for row in data["accuracy"]] == ["gold", "verification", "human", "all"]
