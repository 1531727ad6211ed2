from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from classifier.metrics import collector_register
        from classifier.monitoring.signals import dataset_drift_confirmed

        from .drift import retrain_on_drift
        from .metrics import TrainingRunCollector

        collector_register(TrainingRunCollector())
        dataset_drift_confirmed.connect(retrain_on_drift, dispatch_uid="training.retrain_on_drift")
