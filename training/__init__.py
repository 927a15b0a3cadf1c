"""Training side of the stack: BAAC ingestion, synthetic data, dataset build, model
training and the model registry. The feature contract, storage layer and registry
reader live here too and are imported by the scorer and the drift job, so the modules
they import stay free of training-only dependencies."""
