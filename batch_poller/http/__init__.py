"""The daemon's HTTP face: the admin API, /metrics, /healthz and the status page."""
