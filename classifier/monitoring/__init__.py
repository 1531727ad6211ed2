"""Statistics over the prediction log: feature and prediction drift, live accuracy, latency.

Pure functions over numpy arrays; the database and the window rules live in the service.
"""
