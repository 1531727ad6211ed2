"""manage.py train_model <algorithm> | --all: train through the same service as the API."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.catalogue import CATALOGUE, ParamError, parse_param_pairs
from training.holdout import DEFAULT_SPLIT_SEED
from training.models import ActivationMode, TrainingRun
from training.services.runs import TrainingConflict, TrainingQueueUnavailable
from training.start import training_run_start

METRIC_COLUMNS = ("train_accuracy", "test_accuracy", "test_precision", "test_recall", "test_f1", "cv_accuracy_mean")


class Command(BaseCommand):
    help = "Train a model from the catalogue and register it as a new version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("algorithm", nargs="?", help=f"one of: {', '.join(CATALOGUE)}")
        parser.add_argument("--all", action="store_true", help="train every algorithm of the catalogue")
        parser.add_argument("--name", help="model name (default: the algorithm's name)")
        parser.add_argument(
            "--param", action="append", default=[], metavar="K=V", help="estimator parameter, e.g. n_neighbors=7"
        )
        parser.add_argument("--data", help="CSV file (penguins.csv or penguins_v1.csv format)")
        parser.add_argument("--test-size", type=float, default=0.2, help="held-out fraction (default 0.2)")
        parser.add_argument(
            "--seed",
            type=int,
            default=42,
            help="the estimator's random seed (default 42); the test rows stay the same whatever it is",
        )
        parser.add_argument(
            "--split-seed",
            type=int,
            default=DEFAULT_SPLIT_SEED,
            help=(
                f"decides, with the data, which rows are held out for testing (default {DEFAULT_SPLIT_SEED}); "
                "changing it changes the test rows, so the new version shares fewer of them with the champion "
                "and is compared with it on the rows neither trained on"
            ),
        )
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--activate",
            choices=ActivationMode.values,
            default=ActivationMode.NOT_WORSE,
            help=(
                "whether the new version replaces the active one, judged on the same test rows: not_worse (default: "
                "unless significantly worse), better (only if significantly better), force, never"
            ),
        )
        group.add_argument("--no-activate", action="store_true", help="the same as --activate never")
        group.add_argument("--force-activate", action="store_true", help="the same as --activate force")
        parser.add_argument(
            "--async",
            dest="queue",
            action="store_true",
            help="queue the run for a Celery worker and return (trains here when no broker is configured)",
        )

    def handle(self, *args, **options) -> None:
        if options["all"] == bool(options["algorithm"]):
            raise CommandError(f"Give one algorithm ({', '.join(CATALOGUE)}) or --all.")
        if options["all"] and (options["name"] or options["param"]):
            raise CommandError("--name and --param apply to one algorithm, not to --all.")
        try:
            params = parse_param_pairs(options["param"])
        except ParamError as exc:
            raise CommandError(str(exc)) from None
        activation = options["activate"]
        if options["no_activate"]:
            activation = ActivationMode.NEVER
        elif options["force_activate"]:
            activation = ActivationMode.FORCE
        algorithms = list(CATALOGUE) if options["all"] else [options["algorithm"]]
        runs = []
        for algorithm in algorithms:
            try:
                run = training_run_start(
                    algorithm=algorithm,
                    params=params,
                    model_name=options["name"],
                    data_path=options["data"],
                    test_size=options["test_size"],
                    seed=options["seed"],
                    split_seed=options["split_seed"],
                    activation=activation,
                    trigger=TrainingRun.Trigger.COMMAND,
                    # Foreground trains here and waits, broker or not; --async hands the run to a
                    # worker (or trains here anyway when no broker is configured).
                    in_process=None if options["queue"] else True,
                )
            except (ParamError, TrainingConflict, TrainingQueueUnavailable) as exc:
                raise CommandError(str(exc)) from None
            runs.append(run)
            if options["queue"] and run.is_active:
                self.stdout.write(
                    f"queued run {run.pk} for {run.model_name} (task {run.task_id or '-'}); follow it in the admin "
                    f"(Training runs) or at GET /api/v1/training-runs/{run.pk}/"
                )
            elif not run.is_active:
                self._report(run)
            else:
                self.stdout.write(f"run {run.pk} for {run.model_name} is {run.status}")
        if not options["queue"]:
            self._table(runs)
        failed = [run for run in runs if run.status == TrainingRun.Status.FAILED]
        if failed:
            raise CommandError("; ".join(f"{run.model_name}: {run.error}" for run in failed))

    def _report(self, run: TrainingRun) -> None:
        if run.status == TrainingRun.Status.SUCCEEDED:
            version = run.version
            self.stdout.write(
                self.style.SUCCESS(f"{run.model_name} v{version.number} trained in {run.duration_seconds:.2f}s")
                + f" — {run.activation_note}"
            )

    def _table(self, runs: list[TrainingRun]) -> None:
        done = [run for run in runs if run.status == TrainingRun.Status.SUCCEEDED]
        if not done:
            return
        header = f"{'model':<20} {'ver':>4} " + " ".join(f"{column:>16}" for column in METRIC_COLUMNS)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for run in done:
            metrics = run.version.metrics
            cells = " ".join(f"{metrics.get(column, float('nan')):>16.4f}" for column in METRIC_COLUMNS)
            self.stdout.write(f"{run.model_name:<20} {run.version.number:>4} {cells}")
