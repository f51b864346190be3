"""Aggregate a crowd label file without a project: `manage.py aggregate FILE --method ...`."""

from __future__ import annotations

import csv
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from quality.aggregation import METHODS, aggregate
from quality.crowdfile import CrowdFileError, crowd_rows_read, crowd_rows_to_triples


class Command(BaseCommand):
    help = (
        "Aggregate a CSV or JSONL file of (item, annotator, label) rows into one label per "
        "item; prints accuracy when a gold column is given. Example (RTE): manage.py aggregate "
        "../shared/data/crowd/rte.standardized.csv --method dawid_skene --item-column orig_id "
        "--worker-column '!amt_worker_ids' --label-column response --gold-column gold"
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--method", choices=sorted(METHODS), default="dawid_skene")
        parser.add_argument("--item-column", default="item")
        parser.add_argument("--worker-column", default="worker")
        parser.add_argument("--label-column", default="label")
        parser.add_argument("--gold-column", default=None, help="Known answers, if any.")
        parser.add_argument("--format", choices=["csv", "jsonl"], default=None)
        parser.add_argument("--delimiter", default=None, help="CSV only; sniffed if omitted.")
        parser.add_argument(
            "--output", default=None, help="Write item,label,confidence,tie as CSV ('-' = stdout)."
        )

    def handle(self, *args, **options):
        try:
            rows = crowd_rows_read(
                options["file"],
                item_column=options["item_column"],
                worker_column=options["worker_column"],
                label_column=options["label_column"],
                gold_column=options["gold_column"],
                fmt=options["format"],
                delimiter=options["delimiter"],
            )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {options['file']}") from exc
        except CrowdFileError as exc:
            raise CommandError(f"{options['file']}: {exc}") from exc
        triples, items, _workers, labels, gold = crowd_rows_to_triples(rows)
        method = options["method"]
        started = time.perf_counter()
        # The command is a benchmark of the file as given: gold is held out, never used to fit.
        result = aggregate(triples, method=method)
        seconds = time.perf_counter() - started
        out = self.stdout
        out.write(
            f"{method}: {triples.n_items} items, {triples.n_workers} annotators, "
            f"{triples.item.size} labels, {labels.size} classes; {seconds * 1000:.1f} ms"
            + (f", {result.n_iter} iterations" if result.n_iter else "")
        )
        out.write(f"ties: {int(result.tie.sum())}; mean confidence: {result.confidence.mean():.4f}")
        known = gold >= 0
        if options["gold_column"]:
            if not known.any():
                raise CommandError(f"Column {options['gold_column']!r} has no gold labels.")
            correct = (result.labels[known] == gold[known]).sum()
            total = int(known.sum())
            out.write(f"accuracy vs gold: {correct / total:.4f} ({correct}/{total} items)")
        if options["output"]:
            handle = (
                sys.stdout
                if options["output"] == "-"
                else open(  # noqa: SIM115
                    options["output"], "w", newline="", encoding="utf-8"
                )
            )
            try:
                writer = csv.writer(handle)
                writer.writerow(["item", "label", "confidence", "tie"])
                writer.writerows(
                    (item, labels[code], f"{conf:.6f}", int(tie))
                    for item, code, conf, tie in zip(
                        items.tolist(), result.labels, result.confidence, result.tie, strict=True
                    )
                )
            finally:
                if handle is not sys.stdout:
                    handle.close()
