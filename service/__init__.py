"""The scorer: a FastAPI service that triages accidents with the registry's production
model, logs what it scores for the drift job, and reloads new versions without a
restart. ``python -m service`` runs it; :func:`service.app.create_app` builds it."""
