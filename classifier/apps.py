from django.apps import AppConfig


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Model registry and predictions"

    def ready(self) -> None:
        from .metrics import collector_register
        from .monitoring.metrics import MonitoringCollector

        collector_register(MonitoringCollector())
