"""Signals other apps may act on; classifier itself never reacts to them.

``dataset_drift_confirmed(sender=MonitoringReport, report=<MonitoringReport>)`` is sent after
the commit of a check when the active version's dataset drifted in two consecutive checks
(once per such streak). Training listens to it to retrain when ``PENGUIN_RETRAIN_ON_DRIFT`` is on.
"""

from django.dispatch import Signal

dataset_drift_confirmed = Signal()
