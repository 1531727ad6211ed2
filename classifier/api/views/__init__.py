"""API v1 views of the registry, by sub-domain: ``models`` (models, versions, sync), ``predict``, ``predictions``.

Every one is a thin door into ``classifier.services``. Who may do what: model reads and
predict are open (rate-limited); the prediction log needs a login; every write needs a
staff user.
"""
