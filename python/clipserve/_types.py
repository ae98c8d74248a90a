"""Result types shared by the in-process model and the HTTP client."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class StageTimings:
    """Wall-clock milliseconds per stage of one request (see docs/server.md, "Stage timings").

    ``preprocess_ms`` covers reading + decoding + resizing images (or tokenizing texts),
    ``queue_ms`` the longest wait of an item for its batch, ``encode_ms`` the batches that
    carried the request, ``batches`` / ``max_batch`` how it was batched. Over HTTP,
    ``parse_ms`` is the server's request parsing and ``http_ms`` the client's round trip.
    """

    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    queue_ms: float = 0.0
    encode_ms: float = 0.0
    postprocess_ms: float = 0.0
    total_ms: float = 0.0
    batches: int = 0
    max_batch: int = 0
    parse_ms: Optional[float] = None
    http_ms: Optional[float] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "StageTimings":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "engine_total_ms" in d:  # the server's engine time; its own total includes parsing
            known["total_ms"] = d["engine_total_ms"]
        return cls(**known)


class Embeddings(np.ndarray):
    """A float32 ``numpy.ndarray`` of shape (N, D) (one row per input, in input order) that
    also carries ``timings`` (:class:`StageTimings`) and, for texts, ``token_counts``."""

    timings: Optional[StageTimings]
    token_counts: Optional[List[int]]

    @staticmethod
    def wrap(array: np.ndarray, timings: Optional[StageTimings],
             token_counts: Optional[List[int]] = None) -> "Embeddings":
        out = array.view(Embeddings)
        out.timings = timings
        out.token_counts = token_counts
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.timings = getattr(obj, "timings", None)
        self.token_counts = getattr(obj, "token_counts", None)

    def __reduce__(self):  # pickles as a plain ndarray
        return np.asarray(self).__reduce__()


class LabelScore(NamedTuple):
    """One label of one image: ``prob`` is the softmax over the labels of
    ``logit_scale * cosine``; ``cosine`` of the image and the label's text feature."""

    label: str
    prob: float
    cosine: float


class Classification(List[List[LabelScore]]):
    """Per image, its labels sorted by decreasing probability (``top_k`` of them when given).
    Also ``timings`` and ``text_encoded`` (prompts this call had to encode; 0 when cached)."""

    def __init__(self, rows: List[List[LabelScore]], timings: Optional[StageTimings],
                 text_encoded: int) -> None:
        super().__init__(rows)
        self.timings = timings
        self.text_encoded = text_encoded


@dataclass(frozen=True)
class LabelSet:
    """A named label set: its labels and the templates their features were averaged over."""

    name: str
    labels: Tuple[str, ...]
    templates: Tuple[str, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded (in-process) or served (client)."""

    model_id: str
    embed_dim: int
    image_size: int
    context_length: int
    arch: Optional[str] = None
    precision: Optional[str] = None
    backend: Optional[str] = None
    logit_scale: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)
