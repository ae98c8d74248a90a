"""Result types shared by the in-process model and the HTTP client."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

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
    also carries ``timings`` (:class:`StageTimings`), for texts in-process ``token_counts``,
    and ``errors`` (``{index: exception}``, non-empty only with ``errors="return"``, whose
    failed rows are NaN)."""

    timings: Optional[StageTimings]
    token_counts: Optional[List[int]]
    errors: Dict[int, Exception]

    @staticmethod
    def wrap(array: np.ndarray, timings: Optional[StageTimings],
             token_counts: Optional[List[int]] = None) -> "Embeddings":
        out = array.view(Embeddings)
        out.timings = timings
        out.token_counts = token_counts
        out.errors = {}
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.timings = getattr(obj, "timings", None)
        self.token_counts = getattr(obj, "token_counts", None)
        self.errors = getattr(obj, "errors", {})

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


def merge_timings(ts: List[StageTimings]) -> Optional[StageTimings]:
    """Timings of requests run one after another (one call split into several requests)."""
    ts = [t for t in ts if t is not None]
    if not ts:
        return None
    if len(ts) == 1:
        return ts[0]

    def add(k: str) -> float:
        return sum((getattr(t, k) or 0.0) for t in ts)

    http = [t.http_ms for t in ts if t.http_ms is not None]
    parse = [t.parse_ms for t in ts if t.parse_ms is not None]
    return StageTimings(decode_ms=add("decode_ms"), preprocess_ms=add("preprocess_ms"),
                        queue_ms=add("queue_ms"), encode_ms=add("encode_ms"),
                        postprocess_ms=add("postprocess_ms"), total_ms=add("total_ms"),
                        batches=int(add("batches")), max_batch=max(t.max_batch for t in ts),
                        parse_ms=sum(parse) if parse else None,
                        http_ms=sum(http) if http else None)


def encode_each(encode: Callable[[List[Any], int], "Embeddings"], images: List[Any],
                dim: int) -> "Embeddings":
    """``errors="return"``: the whole list in one call; if an image makes it fail, each image
    alone, so the good ones get their rows and the bad ones an entry in ``errors`` (their rows
    are NaN). Errors that are not an image's fault (overloaded, unavailable, unauthorized,
    internal, no connection) are raised. ``encode(images, first_index)`` names images from first_index."""
    from ._errors import (ClipserveError, ConnectionFailed, InternalError, Overloaded,
                          Unauthorized, Unavailable)
    fatal = (Overloaded, Unavailable, Unauthorized, InternalError, ConnectionFailed)
    try:
        return encode(images, 0)
    except fatal:
        raise
    except ClipserveError:
        pass
    rows = np.full((len(images), dim), np.nan, dtype=np.float32)
    errors: Dict[int, Exception] = {}
    timings = []
    for i, x in enumerate(images):
        try:
            r = encode([x], i)
        except fatal:
            raise
        except ClipserveError as e:
            errors[i] = e
            continue
        rows[i] = r[0]
        timings.append(r.timings)
    out = Embeddings.wrap(rows, merge_timings(timings))
    out.errors = errors
    return out
