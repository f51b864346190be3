"""The simulation (pure: no database) on a small synthetic labelled file."""

import csv
import random

import pytest

from active_learning.simulation import (
    area_under_curve,
    labels_to_reach,
    load_labelled,
    mean_over_seeds,
    simulate,
)

TOPICS = {
    "sport": ["match", "goal", "league", "cup", "coach", "striker"],
    "tech": ["chip", "phone", "code", "app", "internet", "software"],
    "politics": ["vote", "party", "law", "minister", "policy", "election"],
}


@pytest.fixture
def labelled_csv(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for n in range(240):
            topic = list(TOPICS)[n % 3]
            writer.writerow([" ".join(rng.sample(TOPICS[topic], 3)) + f" doc {n}", topic])
    return path


def test_learning_curve_summaries():
    curve = [(10, float("nan")), (20, 0.5), (30, 0.9), (40, 1.0)]
    assert labels_to_reach(curve, 0.85) == 30
    assert labels_to_reach(curve, 1.01) is None
    # trapezoids over 10..40 with 0 before the first model: (0.25 + 0.7 + 0.95) * 10 / 30
    assert area_under_curve(curve) == pytest.approx((0.25 + 0.7 + 0.95) / 3)


def test_mean_curve_is_undefined_until_every_seed_has_a_model():
    nan = float("nan")
    curves = [[(10, nan), (15, 0.6), (20, 0.8)], [(10, 0.9), (15, 0.8), (20, 1.0)]]
    mean = mean_over_seeds(curves)
    # at 10 labels only one seed has a model: its 0.9 alone would overstate the mean
    assert [n for n, _ in mean] == [10, 15, 20]
    assert mean[0][1] != mean[0][1]  # nan
    assert mean[1][1] == pytest.approx(0.7)
    assert mean[2][1] == pytest.approx(0.9)
    assert labels_to_reach(mean, 0.85) == 20


def test_simulation_writes_curves_and_summary(labelled_csv, tmp_path):
    texts, labels = load_labelled(labelled_csv)
    result = simulate(
        texts=texts,
        labels=labels,
        variants=["random", "margin", "margin_diverse"],
        seeds=[0, 1],
        batch=10,
        budget=60,
        initial=10,
        model_name="hashing",
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "out",
        min_labels=6,
        log=lambda *_: None,
    )
    summary = result["summary"]
    assert set(summary) == {"random", "margin", "margin_diverse"}
    for s in summary.values():
        assert [n for n, _ in s["curve"]] == [10, 20, 30, 40, 50, 60]
        assert 0 < s["full_data_macro_f1"] <= 1
        assert 0 <= s["aulc"] <= 1
        assert len(s["labels_95_per_seed"]) == 2
    rows = list(csv.DictReader(result["csv"].open()))
    assert len(rows) == 3 * 2 * 6
    assert result["png"].stat().st_size > 10_000
    # the embeddings were cached for the next run
    assert list((tmp_path / "cache").glob("embeddings-*.npy"))


def test_bad_rows_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(SystemExit, match=r"bad\.jsonl:2"):
        load_labelled(path)
