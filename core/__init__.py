"""The shared core every role imports: the feature contract, the storage layout and
its table schemas, the storage backends, the model registry, the error hierarchy,
logging, the command-line runner and the retrain launcher. It imports none of
scikit-learn, FastAPI or Evidently (import-linter checks it in ``make lint``)."""
