from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from classifier.metrics import collector_register

        from .metrics import TrainingRunCollector

        collector_register(TrainingRunCollector())
