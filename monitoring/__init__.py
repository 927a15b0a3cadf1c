"""Monitoring side of the stack: the drift job (Evidently reports, Pushgateway
metrics, retrain trigger), the traffic simulator and the local end-to-end demo."""
