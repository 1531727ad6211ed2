"""Retrain the five default models again and again under the default policy (not_worse) and
check that no version was ever replaced by one significantly worse on the same rows.

    .venv/bin/python scripts/promotion_check.py [--rounds 2]

Runs against a throw-away SQLite database and artifacts folder. Round 0 trains the defaults;
each later round retrains them: first with the same settings (a byte-identical artifact
registers nothing), then with estimator seeds 1, 2, … (another forest, another boosting).
A last round offers a deliberately weak candidate (logistic regression with C=0.001) to show
the gate keeping the champion. Prints one line per run and exits non-zero on a violation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="retraining rounds after the first training")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="promotion-check-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'db.sqlite3'}"
    os.environ["PENGUIN_ARTIFACTS_DIR"] = str(folder / "artifacts")
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "penguinsite.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from classifier.comparison import ALPHA
    from training.catalogue import CATALOGUE
    from training.models import TrainingRun
    from training.start import training_run_start

    call_command("migrate", verbosity=0)
    plan = [("train", {})] + [("same settings", {})] + [(f"seed {n}", {"seed": n}) for n in range(1, args.rounds)]
    violations, replaced, kept, identical = [], 0, 0, 0
    print(f"{'round':<14} {'model':<19} {'ver':>3} {'outcome':<15} {'rows':>4} {'cand/champ only':>15} {'p':>7}")
    runs = []
    for label, extra in plan:
        for algorithm in CATALOGUE:
            runs.append((label, training_run_start(algorithm=algorithm, in_process=True, **extra)))
    runs.append(
        ("weak candidate", training_run_start(algorithm="logisticregression", params={"C": 0.001}, in_process=True))
    )
    for label, run in runs:
        assert run.status == TrainingRun.Status.SUCCEEDED, run.error
        evaluation = run.version.evaluation or {}
        if run.identical:
            outcome = f"identical v{run.version.number}"
            identical += 1
        elif not evaluation:
            outcome = "first version"
        else:
            outcome = "activated" if run.activated else "kept champion"
            worse = evaluation["p_value"] <= ALPHA and evaluation["champion_only"] > evaluation["candidate_only"]
            if run.activated:
                replaced += 1
                if worse:
                    violations.append(run)
            else:
                kept += 1
        counts = (
            f"{evaluation['candidate_only']}/{evaluation['champion_only']}" if evaluation and not run.identical else "-"
        )
        p_value = f"{evaluation['p_value']:.3g}" if evaluation and not run.identical else "-"
        rows = evaluation.get("rows", "-") if not run.identical else "-"
        name, number = run.model_name, run.version.number
        print(f"{label:<14} {name:<19} {number:>3} {outcome:<15} {rows:>4} {counts:>15} {p_value:>7}")
    print(
        f"\n{len(runs)} runs: {replaced} champions replaced, {kept} kept, {identical} identical retrains; "
        f"replaced by a significantly worse version: {len(violations)}"
    )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
