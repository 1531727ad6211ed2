"""Registry and prediction-log writes, by sub-domain: ``registry``, ``sync``, ``predictions``."""
