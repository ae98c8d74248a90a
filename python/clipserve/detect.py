"""Open-vocabulary detection (OWL-ViT): ``clipserve.load_detector(...)`` in-process, and the
result types :class:`Detection` / :class:`Detections` that ``Client.detect`` returns too.

Numbers are transformers 4.30's ``OwlViTForObjectDetection`` + ``post_process_object_detection``
at fp32: boxes ``(x0, y0, x1, y1)`` in pixels of the original image, unclipped, no NMS, in
patch order, unless ``nms`` / ``top_k`` / ``sort`` / ``clip_boxes`` ask otherwise.
:meth:`Detector.pipeline` gives transformers' ``pipeline("zero-shot-object-detection")``
output. New queries about an image already seen run only the class head (the image's
features are cached by content hash). Thread-safe: concurrent calls are batched.
"""
from __future__ import annotations

import atexit
import io
import os
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _inputs
from ._errors import InvalidInput, Unsupported
from ._types import StageTimings

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]
Box = Tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected object: the query text (``""`` for an example-image query), its index in
    the queries, the sigmoid score, and ``box = (x0, y0, x1, y1)`` in original-image pixels."""

    label: str
    label_index: int
    score: float
    box: Box


class Detections(List[Detection]):
    """The detections of one image (a list of :class:`Detection`) with ``image_size`` (W, H),
    ``image_cached`` (the image's features came from the cache), ``queries_encoded``,
    ``truncated_queries``, ``example_box_index`` (image-guided), ``timings``, and in-process
    ``logits`` (N x Q raw logits, transformers' ``outputs.logits[0]``) and ``pred_boxes``
    (N x 4 ``cx, cy, w, h`` in [0, 1])."""

    def __init__(self, items: Sequence[Detection], *, image_size: Tuple[int, int],
                 image_cached: bool = False, queries_encoded: int = 0,
                 truncated_queries: Sequence[int] = (), example_box_index: int = -1,
                 timings: Optional[StageTimings] = None, logits: Optional[np.ndarray] = None,
                 pred_boxes: Optional[np.ndarray] = None) -> None:
        super().__init__(items)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.image_cached = bool(image_cached)
        self.queries_encoded = int(queries_encoded)
        self.truncated_queries = list(truncated_queries)
        self.example_box_index = int(example_box_index)
        self.timings = timings
        self.logits = logits
        self.pred_boxes = pred_boxes

    def as_transformers(self) -> Dict[str, np.ndarray]:
        """What ``processor.post_process_object_detection(outputs, threshold,
        target_sizes)[0]`` returns, as numpy: ``{"scores": (K,) float32, "labels": (K,) int64,
        "boxes": (K, 4) float32 x0 y0 x1 y1}`` in this list's order."""
        return {"scores": np.array([d.score for d in self], dtype=np.float32),
                "labels": np.array([d.label_index for d in self], dtype=np.int64),
                "boxes": np.array([d.box for d in self], dtype=np.float32).reshape(-1, 4)}

    def __repr__(self) -> str:
        return (f"Detections({list.__repr__(self)}, image_size={self.image_size}, "
                f"image_cached={self.image_cached})")


def pipeline_format(dets: Sequence[Detection], top_k: Optional[int] = None) -> List[Dict[str, Any]]:
    """transformers' ``ZeroShotObjectDetectionPipeline`` output: ``[{"score", "label", "box":
    {"xmin", "ymin", "xmax", "ymax"}}]`` by decreasing score (stable), boxes cut to int as its
    ``box.int()`` does (toward zero), at most ``top_k``."""
    out = [{"score": d.score, "label": d.label,
            "box": {"xmin": int(d.box[0]), "ymin": int(d.box[1]), "xmax": int(d.box[2]),
                    "ymax": int(d.box[3])}} for d in dets]
    out.sort(key=lambda r: r["score"], reverse=True)
    return out[:top_k] if top_k else out


def detection_image(x: Any, name: str) -> bytes:
    """Encoded bytes of one image for detection: a file's bytes, bytes as given, PIL images
    and uint8 arrays as a lossless PNG (PIL modes a PNG cannot hold are converted to RGB by
    Pillow first, as OwlViTProcessor's ``convert("RGB")`` does). Preprocessed tensors are
    refused: boxes are scaled to the original image, which they no longer carry."""
    if _inputs.is_pil(x):
        im = x if x.mode in _inputs.PNG_MODES else x.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    if isinstance(x, np.ndarray) or (hasattr(x, "__array__") and
                                     not isinstance(x, (bytes, bytearray, memoryview, str))):
        a = np.asarray(x)
        if a.dtype != np.uint8:
            raise Unsupported(f"{name}: detection takes images (uint8 H x W [x 3|4] arrays, "
                              f"files, bytes, PIL images), not {a.dtype} arrays or "
                              f"preprocessed tensors: boxes are scaled to the original image")
        return _inputs.encoded_image(a, name, lambda: 0)
    return _inputs.encoded_image(x, name, lambda: 0)


def _name(image: Any, name: Optional[str]) -> str:
    """How errors name the image: the caller's name, else the path, else "image"."""
    return name or (os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image")


def _queries(queries: Union[str, Sequence[str]]) -> List[str]:
    if not isinstance(queries, str) and hasattr(queries, "__len__") and len(queries) == 0:
        raise InvalidInput("no queries: give at least one text")
    return _inputs.as_text_list(queries)


def _result(r: Dict[str, Any]) -> Detections:
    return Detections([Detection(lab, idx, score, tuple(box)) for lab, idx, score, box
                       in r["detections"]],
                      image_size=r["image_size"], image_cached=r["image_cached"],
                      queries_encoded=r["queries_encoded"],
                      truncated_queries=r["truncated_queries"],
                      example_box_index=r["example_box_index"],
                      timings=StageTimings.from_dict(r["timings"]), logits=r["logits"],
                      pred_boxes=r["pred_boxes"])


_OPEN: "weakref.WeakSet[Detector]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for d in list(_OPEN):
        d.close()


class Detector:
    """An OWL-ViT model loaded in this process (``clipserve.load_detector``)."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._info = native.info()
        _OPEN.add(self)

    def detect(self, image: ImageLike, queries: Union[str, Sequence[str]], *,
               threshold: float = 0.1, nms: Optional[float] = None, top_k: Optional[int] = None,
               sort: bool = False, clip_boxes: bool = False, truncate: bool = False,
               name: Optional[str] = None) -> Detections:
        """Text queries: ``OwlViTForObjectDetection(**processor(text=[queries], images=image))``
        then ``post_process_object_detection(threshold, target_sizes=[(H, W)])``: each box
        keeps its best query's sigmoid score when above ``threshold``. Beyond transformers:
        ``nms`` (per-label IoU threshold), ``top_k`` / ``sort`` (by score), ``clip_boxes``;
        ``truncate`` cuts queries longer than 16 tokens instead of raising InvalidInput."""
        label = _name(image, name)
        data = detection_image(image, label)
        r = self._native.detect(data, _queries(queries), float(threshold), float(nms or 0),
                                int(top_k or 0), bool(sort), bool(clip_boxes), bool(truncate),
                                label)
        return _result(r)

    def detect_by_example(self, image: ImageLike, example: ImageLike,
                          box: Optional[Sequence[float]] = None, *, threshold: float = 0.6,
                          nms: float = 0.3, top_k: Optional[int] = None, sort: bool = False,
                          clip_boxes: bool = False, name: Optional[str] = None) -> Detections:
        """Image-guided (one-shot): finds what ``example`` (or its ``box``, x0 y0 x1 y1 in the
        example's pixels) shows, as transformers 4.30's ``image_guided_detection`` +
        ``post_process_image_guided_detection(threshold=0.6, nms_threshold=0.3)``."""
        label = _name(image, name)
        b = None
        if box is not None:
            b = [float(v) for v in box]
            if len(b) != 4:
                raise InvalidInput(f"box must be 4 numbers (x0, y0, x1, y1), got {len(b)}")
        r = self._native.detect_by_example(
            detection_image(image, label), detection_image(example, label + " (example)"), b,
            float(threshold), float(nms), int(top_k or 0), bool(sort), bool(clip_boxes), True,
            label)
        return _result(r)

    def pipeline(self, image: ImageLike, candidate_labels: Union[str, Sequence[str]], *,
                 threshold: float = 0.1, top_k: Optional[int] = None) -> List[Dict[str, Any]]:
        """transformers' ``pipeline("zero-shot-object-detection")(image, candidate_labels)``:
        each label is scored on its own (one query per model call, as the pipeline does, so a
        box may appear once per label), then all results by decreasing score, boxes as ints.
        The image is encoded once (cached) and each label runs only the text tower + head."""
        labels = _queries(candidate_labels)
        data = detection_image(image, "image")
        merged: List[Detection] = []
        for lab in labels:
            r = self._native.detect(data, [lab], float(threshold), 0.0, 0, False, False, False,
                                    "image")
            merged.extend(Detection(lab, 0, score, tuple(box)) for _, _, score, box
                          in r["detections"])
        return pipeline_format(merged, top_k)

    @property
    def info(self) -> Dict[str, Any]:
        """model_id, image_size, patch_size, boxes (N), context_length, backend, precision."""
        return dict(self._info)

    def stats(self) -> Dict[str, int]:
        """Counters: images encoded, image batches, image / query cache hits and misses."""
        return dict(self._native.counters())

    def close(self) -> None:
        """Frees the model (waits for calls in flight); later calls raise Unavailable."""
        self._native.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self._info
        return (f"clipserve.Detector({i['model_id']!r}, image_size={i['image_size']}, "
                f"precision={i['precision']!r})")


def load_detector(model: Union[str, "os.PathLike[str]"], *, precision: str = "fp32",
                  threads: Optional[int] = None, backend: str = "cpu", max_batch: int = 4,
                  max_wait_us: int = 2000, image_cache: int = 16, query_cache: int = 4096,
                  warmup: bool = True, model_id: Optional[str] = None) -> Detector:
    """Loads an OWL-ViT checkpoint (transformers layout, a directory or a hub name such as
    ``google/owlvit-base-patch32``, downloaded into the Hugging Face cache), like ``clipserve
    serve --detect-model``. ``precision``: ``"fp32"`` (transformers' numbers) or ``"bf16"``;
    ``image_cache``: images whose features are kept; ``warmup``: run every batch size and
    query shape once so the first call is as fast as the rest."""
    from .model import _need_native
    native = _need_native().Detector(os.fspath(model), backend, precision, int(threads or 0),
                                     int(max_batch), int(max_wait_us), int(image_cache),
                                     int(query_cache), bool(warmup), model_id or "")
    return Detector(native)
