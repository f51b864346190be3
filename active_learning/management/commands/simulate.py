"""`manage.py simulate`: oracle-annotator simulation of the query strategies (see
`active_learning.simulation`)."""

from django.core.management.base import BaseCommand

from active_learning.simulation import add_arguments, simulate_main
from models_app.services.config import embedding_model_name


class Command(BaseCommand):
    help = (
        "Replay an oracle annotator over a labelled CSV/JSONL file (or BBC News) for each "
        "query strategy and seed; write learning curves (CSV, PNG) and print labels needed "
        "for 90%/95% of the full-data macro-F1 and the area under the learning curve."
    )

    def add_arguments(self, parser) -> None:
        add_arguments(parser)

    def handle(self, *args, **options) -> None:
        simulate_main(options, default_model=embedding_model_name(), log=self.stdout.write)
