"""``clipserve.Client``: the methods of :class:`clipserve.Model` against a running
``clipserve serve`` (docs/server.md), over HTTP with the standard library only (urllib).

Images are sent as encoded bytes (base64 in JSON): files as they are, PIL images and numpy
arrays as lossless PNGs (PIL images in modes PNG cannot hold are first transformed here by
Pillow as open_clip does), so results equal the in-process ones. Errors raise the same
exception classes as in-process, chosen by the error body's ``type``.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _inputs
from ._errors import ClipserveError, ConnectionFailed, Unsupported, error_for
if TYPE_CHECKING:
    from .detect import Detections
from ._types import (Classification, Embeddings, LabelScore, LabelSet, ModelInfo,
                     StageTimings, encode_each, merge_timings)

_TEMPLATE_NAMES = ("imagenet", "openai_imagenet", "simple")


class Client:
    """A client of ``clipserve serve`` with the in-process model's methods.

    ``url``: the server's base address (``http://127.0.0.1:8080``). ``api_key``: sent as
    ``Authorization: Bearer`` (the server's ``--api-key``). ``timeout``: seconds per request.
    ``max_items_per_request``: longer calls are split into several requests (the server
    limits body sizes). ``model``: which of the server's models to use (its id or any alias;
    ``None`` = the server's default model), for a server started with several ``--model``.
    Thread-safe: each call makes its own connection.
    """

    def __init__(self, url: str, api_key: Optional[str] = None, *, timeout: float = 60.0,
                 max_items_per_request: int = 64, model: Optional[str] = None) -> None:
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_items = max(1, int(max_items_per_request))
        self.model = model
        self._info: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()

    # ---- HTTP -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None,
                 query: Optional[Dict[str, str]] = None,
                 allow_404: bool = False) -> Tuple[int, Any, float]:
        url = self.url + urllib.parse.quote(path, safe="/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw = e.read() or b""
            if allow_404 and e.code == 404:
                return 404, None, (time.perf_counter() - t0) * 1e3
            raise self._error(e.code, raw) from None
        except urllib.error.URLError as e:
            raise ConnectionFailed(f"{method} {url}: {e.reason}") from None
        except (OSError, TimeoutError) as e:
            raise ConnectionFailed(f"{method} {url}: {e}") from None
        ms = (time.perf_counter() - t0) * 1e3
        if ctype.startswith("application/json"):
            return status, json.loads(raw.decode("utf-8")), ms
        return status, raw.decode("utf-8", "replace"), ms

    @staticmethod
    def _error(status: int, raw: bytes) -> ClipserveError:
        try:
            err = json.loads(raw.decode("utf-8"))["error"]
            return error_for(err.get("type"), status, err.get("message", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return error_for(None, status, f"HTTP {status}: {raw[:200]!r}")

    @staticmethod
    def _item_error(item: Any) -> None:
        """Per-item answers: an item that failed carries an error object instead of a result."""
        if isinstance(item, dict) and "error" in item:
            err = item["error"]
            if isinstance(err, dict):
                raise error_for(err.get("type"), err.get("code"), err.get("message", ""))
            raise error_for(None, None, str(err))

    def _timings(self, body: Dict[str, Any], http_ms: float) -> StageTimings:
        t = dict(body.get("timings") or {})
        t["http_ms"] = http_ms
        return StageTimings.from_dict(t)

    def _model_info(self) -> Dict[str, Any]:
        with self._lock:
            if self._info is None:
                if self.model is None:
                    _, body, _ = self._request("GET", "/v1/models")
                    self._info = body["data"][0]
                else:
                    _, self._info, _ = self._request("GET", f"/v1/models/{self.model}")
            return self._info

    def _with_model(self, req: Dict[str, Any]) -> Dict[str, Any]:
        if self.model is not None:
            req["model"] = self.model
        return req

    def _model_query(self) -> Optional[Dict[str, str]]:
        return None if self.model is None else {"model": self.model}

    # ---- embeddings -------------------------------------------------------------------------
    def _embed(self, inputs: List[Any], normalize: bool) -> Embeddings:
        rows: List[np.ndarray] = []
        timings: List[StageTimings] = []
        for start in range(0, len(inputs), self.max_items):
            part = inputs[start:start + self.max_items]
            if normalize:  # OpenAI-style endpoint, exact float32 as base64
                _, body, ms = self._request(
                    "POST", "/v1/embeddings",
                    self._with_model({"input": part, "encoding_format": "base64"}),
                    query={"timings": "1"})
                for d in sorted(body["data"], key=lambda d: d["index"]):
                    rows.append(np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4"))
            else:  # raw features: /embed with "normalize": false
                texts = [x for x in part if isinstance(x, str)]
                images = [x["image"] for x in part if isinstance(x, dict)]
                req: Dict[str, Any] = {"normalize": False}
                if texts:
                    req["texts"] = texts
                if images:
                    req["images"] = images
                _, body, ms = self._request("POST", "/embed", self._with_model(req),
                                            query={"timings": "1"})
                key = "text_embeddings" if texts else "image_embeddings"
                for err in body.get("errors") or []:  # per-item answers: raise the first error
                    self._item_error({"error": err.get("error", err)} if isinstance(err, dict)
                                     else {"error": err})
                for i, r in enumerate(body.get(key, [])):
                    self._item_error(r)
                    if isinstance(r, dict):
                        r = r.get("embedding")
                    if r is None:
                        raise error_for(None, 500, f"{key}[{start + i}]: no embedding returned")
                    rows.append(np.asarray(r, dtype=np.float32))
            timings.append(self._timings(body, ms))
        arr = np.stack(rows).astype(np.float32, copy=False) if rows else \
            np.zeros((0, 0), np.float32)
        return Embeddings.wrap(np.ascontiguousarray(arr), merge_timings(timings))

    def encode_image(self, images: Any, *, normalize: bool = True,
                     errors: str = "raise") -> Embeddings:
        """Like :meth:`clipserve.Model.encode_image` (paths, bytes, PIL images, uint8 numpy
        arrays; preprocessed tensors raise Unsupported: the server takes encoded images),
        including ``errors="return"``."""
        if errors == "raise":
            return self._encode_images(images, normalize, 0)
        if errors != "return":
            raise _inputs.InvalidInput(f"errors must be 'raise' or 'return', got {errors!r}")
        return encode_each(lambda sub, first: self._encode_images(sub, normalize, first),
                           _inputs.as_image_list(images), self.embed_dim)

    def _encode_images(self, images: Any, normalize: bool, first_index: int) -> Embeddings:
        size = lambda: int(self._model_info()["image_size"])  # noqa: E731
        items = [{"image": base64.b64encode(_inputs.encoded_image(x, f"images[{i}]", size))
                  .decode("ascii")}
                 for i, x in enumerate(_inputs.as_image_list(images), first_index)]
        return self._embed(items, normalize)

    def encode_text(self, texts: Union[str, Sequence[str]], *,
                    normalize: bool = True) -> Embeddings:
        """Like :meth:`clipserve.Model.encode_text`."""
        return self._embed(list(_inputs.as_text_list(texts)), normalize)

    # ---- classification ---------------------------------------------------------------------
    def classify(self, images: Any, labels: Optional[Sequence[str]] = None, *,
                 templates: Union[None, str, Sequence[str]] = None,
                 top_k: Optional[int] = None, label_set: Optional[str] = None) -> Classification:
        """Like :meth:`clipserve.Model.classify`."""
        if label_set is None and labels is None:
            raise _inputs.InvalidInput("give labels (with optional templates) or a label_set")
        size = lambda: int(self._model_info()["image_size"])  # noqa: E731
        encoded = [base64.b64encode(_inputs.encoded_image(x, f"images[{i}]", size))
                   .decode("ascii") for i, x in enumerate(_inputs.as_image_list(images))]
        rows: List[List[LabelScore]] = []
        timings: List[StageTimings] = []
        text_encoded = 0
        for start in range(0, len(encoded), self.max_items):
            req: Dict[str, Any] = {"images": encoded[start:start + self.max_items]}
            if label_set is not None:
                req["labelset"] = label_set
            if labels is not None:
                req["labels"] = _inputs.label_list(labels)
            if templates is not None:
                req["templates"] = templates if isinstance(templates, str) and \
                    templates in _TEMPLATE_NAMES else _inputs.template_list(templates, [], [])
            if top_k is not None:
                req["top_k"] = int(top_k)
            _, body, ms = self._request("POST", "/classify", self._with_model(req),
                                        query={"timings": "1"})
            for r in sorted(body["results"], key=lambda r: r.get("index", 0)):
                self._item_error(r)
                rows.append([LabelScore(s["label"], float(s["prob"]), float(s["cosine"]))
                             for s in r["labels"]])
            timings.append(self._timings(body, ms))
            text_encoded += int(body.get("text_encoded", 0))
        return Classification(rows, merge_timings(timings), text_encoded)

    def put_label_set(self, name: str, labels: Sequence[str],
                      templates: Union[None, str, Sequence[str]] = None) -> bool:
        """Like :meth:`clipserve.Model.put_label_set` (``PUT /labelsets/NAME``)."""
        req: Dict[str, Any] = {"labels": _inputs.label_list(labels)}
        if templates is not None:
            req["templates"] = templates if isinstance(templates, str) and \
                templates in _TEMPLATE_NAMES else _inputs.template_list(templates, [], [])
        _, body, _ = self._request("PUT", f"/labelsets/{name}", req, query=self._model_query())
        return bool(body.get("replaced", False))

    def get_label_set(self, name: str) -> Optional[LabelSet]:
        status, body, _ = self._request("GET", f"/labelsets/{name}", query=self._model_query(),
                                        allow_404=True)
        if status == 404:
            return None
        return LabelSet(body["name"], tuple(body["labels"]), tuple(body["templates"]))

    def delete_label_set(self, name: str) -> bool:
        status, _, _ = self._request("DELETE", f"/labelsets/{name}", query=self._model_query(),
                                     allow_404=True)
        return status != 404

    def label_sets(self) -> List[str]:
        _, body, _ = self._request("GET", "/labelsets", query=self._model_query())
        return list(body["labelsets"])

    # ---- front-ends and information ---------------------------------------------------------
    def tokenize(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """open_clip's tokenizer, computed locally (the server has no tokenize endpoint; the
        tokenizer is the same for every CLIP model), with the server's context length."""
        from .model import tokenize
        return tokenize(texts, int(self._model_info().get("context_length", 77)))

    # ---- detection (a server started with --detect-model) ----------------------------------
    def _detect(self, req: Dict[str, Any]) -> "Detections":
        from .detect import Detection, Detections
        _, body, ms = self._request("POST", "/detect", req)
        return Detections([Detection(d["label"], int(d["label_index"]), float(d["score"]),
                                     tuple(float(v) for v in d["box"]))
                           for d in body["detections"]],
                          image_size=tuple(body["image_size"]), image_cached=body["image_cached"],
                          truncated_queries=body.get("truncated_queries", ()),
                          example_box_index=body.get("example_box_index", -1),
                          timings=self._timings(body, ms))

    @staticmethod
    def _detect_options(req: Dict[str, Any], threshold: Optional[float], nms: Optional[float],
                        top_k: Optional[int], sort: bool, clip_boxes: bool) -> Dict[str, Any]:
        if threshold is not None:
            req["threshold"] = float(threshold)
        if nms is not None:
            req["nms"] = float(nms)
        if top_k:
            req["top_k"] = int(top_k)
        if sort:
            req["sort"] = True
        if clip_boxes:
            req["clip_boxes"] = True
        return req

    def detect(self, image: Any, queries: Union[str, Sequence[str]], *, threshold: float = 0.1,
               nms: Optional[float] = None, top_k: Optional[int] = None, sort: bool = False,
               clip_boxes: bool = False, truncate: bool = False) -> "Detections":
        """``clipserve.load_detector(...).detect`` over ``POST /detect`` (the server's
        ``--detect-model``); the result has no ``logits`` / ``pred_boxes``."""
        from .detect import _queries, detection_image
        req = {"image": base64.b64encode(detection_image(image, "image")).decode("ascii"),
               "queries": _queries(queries)}
        if truncate:
            req["truncate"] = True
        return self._detect(self._detect_options(req, threshold, nms, top_k, sort, clip_boxes))

    def detect_by_example(self, image: Any, example: Any, box: Optional[Sequence[float]] = None,
                          *, threshold: float = 0.6, nms: float = 0.3,
                          top_k: Optional[int] = None, sort: bool = False,
                          clip_boxes: bool = False) -> "Detections":
        """Image-guided detection over ``POST /detect`` (see ``Detector.detect_by_example``)."""
        from .detect import detection_image
        ex: Dict[str, Any] = {
            "image": base64.b64encode(detection_image(example, "example")).decode("ascii")}
        if box is not None:
            ex["box"] = [float(v) for v in box]
        req = {"image": base64.b64encode(detection_image(image, "image")).decode("ascii"),
               "example": ex}
        return self._detect(self._detect_options(req, threshold, nms, top_k, sort, clip_boxes))

    def preprocess(self, image: Any) -> np.ndarray:
        """Not available over HTTP (the server has no preprocess endpoint): raises Unsupported.
        Use ``clipserve.load(...).preprocess`` in-process."""
        raise Unsupported("preprocess is not available over HTTP; use clipserve.load(...)"
                          ".preprocess in-process")

    @property
    def info(self) -> ModelInfo:
        """The served model (``GET /v1/models``)."""
        d = dict(self._model_info())
        core = dict(model_id=d.pop("id"), embed_dim=d.pop("embed_dim"),
                    image_size=d.pop("image_size"), context_length=d.pop("context_length"))
        return ModelInfo(**core, extra=d)

    @property
    def embed_dim(self) -> int:
        return int(self._model_info()["embed_dim"])

    def ready(self) -> bool:
        """True when the server has finished warming up (``GET /health/ready``)."""
        try:
            status, _, _ = self._request("GET", "/health/ready", query=self._model_query())
            return status == 200
        except ClipserveError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Waits until the server is ready; raises Unavailable after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                from ._errors import Unavailable
                raise Unavailable(f"{self.url} not ready after {timeout} s")
            time.sleep(0.05)

    def metrics_text(self) -> str:
        """The server's ``/metrics`` (Prometheus text)."""
        _, body, _ = self._request("GET", "/metrics")
        return body

    def stats(self) -> Dict[str, int]:
        """The engine counters :meth:`clipserve.Model.stats` gives, read from ``/metrics``."""
        names = {('clipserve_items_encoded_total{tower="image"}'): "image_items",
                 ('clipserve_items_encoded_total{tower="text"}'): "text_items",
                 ('clipserve_batches_total{tower="image"}'): "image_batches",
                 ('clipserve_batches_total{tower="text"}'): "text_batches",
                 "clipserve_label_cache_hits_total": "label_cache_hits",
                 "clipserve_label_cache_misses_total": "label_cache_misses"}
        out: Dict[str, int] = {}
        # A server with several models labels each series model="ID" first.
        own = f'model="{self._model_info()["id"]}"'
        for line in self.metrics_text().splitlines():
            key, _, value = line.rpartition(" ")
            if "{" + own in key:
                key = key.replace("{" + own + "}", "").replace(own + ",", "")
            elif 'model="' in key:
                continue
            if key in names:
                out[names[key]] = int(float(value))
        return out

    def close(self) -> None:
        """Nothing to free (every call makes its own connection); for symmetry with Model."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"clipserve.Client({self.url!r})"
