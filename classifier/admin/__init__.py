"""Admin for the registry and the prediction log, by page: ``models``, ``versions``, ``predictions``.

Every change goes through the services: "Activate this version" calls
``model_version_activate``. Versions and predictions are read-only; the prediction list
stays fast at millions of rows. Training adds its own actions to the models page
(``training.admin``).
"""

from . import models, predictions, versions  # noqa: F401  (each registers its ModelAdmin)
