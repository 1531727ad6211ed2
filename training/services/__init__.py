"""Training runs: ``runs`` (validate, record, train, recover) and ``promotion`` (what the registry stores and
whether the version serves). ``training.start`` is the door every caller trains through."""
