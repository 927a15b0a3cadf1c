"""Everything one scorer app owns, built by the app factory and kept on
``app.state.scorer``; routes reach it through ``service.dependencies``."""

from __future__ import annotations

from dataclasses import dataclass

from service.feedback import FeedbackStore
from service.inference_log import InferenceLog
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder
from service.rate_limit import RateLimiter
from service.request_ids import RequestIdSigner
from service.retrain import ApiRetrain
from service.scoring import Scorer, ScoringStats
from service.settings import ScorerSettings
from service.storage_executor import StorageExecutor


@dataclass
class ScorerState:
    settings: ScorerSettings
    metrics: ScorerMetrics
    holder: ModelHolder
    scorer: Scorer
    stats: ScoringStats
    inference_log: InferenceLog | None
    feedback: FeedbackStore
    retrain: ApiRetrain
    host: str
    storage_executor: StorageExecutor
    request_ids: RequestIdSigner
    feedback_limiter: RateLimiter
