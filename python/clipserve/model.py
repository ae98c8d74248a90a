"""The in-process model: ``clipserve.load(...)`` returns a :class:`Model` over the C++ engine.

Every method may be called from any number of Python threads at once: the GIL is released
while images are read, decoded and encoded, and concurrent calls are batched together by the
engine (``max_batch``, ``max_wait_us``).
"""
from __future__ import annotations

import atexit
import os
import weakref
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _inputs
from ._types import (Classification, Embeddings, LabelScore, LabelSet, ModelInfo,
                     StageTimings, encode_each)

try:
    from . import _clipserve as _native
    _IMPORT_ERROR: Optional[ImportError] = None
except ImportError as e:  # the pure-Python client still works without the extension
    _native = None
    _IMPORT_ERROR = e

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]


def _need_native():
    if _native is None:
        raise ImportError(f"clipserve's native extension is not available ({_IMPORT_ERROR}); "
                          f"clipserve.Client works without it") from _IMPORT_ERROR
    return _native


def imagenet_templates() -> List[str]:
    """open_clip's OPENAI_IMAGENET_TEMPLATES (80 prompts, ``{}`` for the class name)."""
    return list(_need_native().imagenet_templates())


def simple_templates() -> List[str]:
    """The single prompt ``"a photo of a {}."`` (the default template)."""
    return list(_need_native().simple_templates())


def tokenize(texts: Union[str, Sequence[str]], context_length: int = 77) -> np.ndarray:
    """``open_clip.tokenize(texts)``: (N, context_length) int64 ids with start and end tokens,
    zero-padded; longer texts are cut to context_length ids ending in the end token."""
    ids, _ = _need_native().tokenize(_inputs.as_text_list(texts), int(context_length))
    return ids


_OPEN_MODELS: "weakref.WeakSet[Model]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Before the interpreter finalizes: let calls in flight (daemon threads) return first.
    for m in list(_OPEN_MODELS):
        m.close()


class Model:
    """A CLIP model loaded in this process (see :func:`load`)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._info = engine.info()
        _OPEN_MODELS.add(self)

    # ---- embeddings -------------------------------------------------------------------------
    def encode_image(self, images: Union[ImageLike, Sequence[ImageLike]], *,
                     normalize: bool = True, errors: str = "raise") -> Embeddings:
        """Image embeddings, float32 (N, D), L2-normalized unless ``normalize=False``.

        ``images``: one image or a sequence; each a file path, encoded bytes (JPEG, PNG, WebP,
        GIF, BMP, TIFF), a ``PIL.Image.Image`` of any mode, a uint8 numpy array (H, W, 3) RGB
        ((H, W) gray and (H, W, 4) RGBA as ``Image.fromarray`` reads them), or a preprocessed
        float32 (3, S, S) tensor; a (N, 3, S, S) array is N preprocessed images. Equal to
        ``model.encode_image(torch.stack([preprocess(Image.open(p)) for p in paths]))`` in
        open_clip (normalized: divided by its norm).

        ``errors="raise"`` (default): a bad image fails the call with an exception naming it.
        ``errors="return"``: bad images get NaN rows and an entry in the result's ``errors``
        (``{index: exception}``); the others are encoded."""
        if errors == "raise":
            return self._encode_images(images, normalize, 0)
        if errors != "return":
            raise _inputs.InvalidInput(f"errors must be 'raise' or 'return', got {errors!r}")
        return encode_each(lambda sub, first: self._encode_images(sub, normalize, first),
                           _inputs.as_image_list(images), self.embed_dim)

    def _encode_images(self, images: Any, normalize: bool, first_index: int) -> Embeddings:
        items = _inputs.engine_items(images, self._info["image_size"], first_index)
        arr, t = self._engine.embed_images(items, bool(normalize))
        return Embeddings.wrap(arr, StageTimings.from_dict(t))

    def encode_text(self, texts: Union[str, Sequence[str]], *,
                    normalize: bool = True) -> Embeddings:
        """Text embeddings, float32 (N, D), L2-normalized unless ``normalize=False``;
        ``open_clip``'s ``model.encode_text(tokenizer(texts))``. ``token_counts`` on the result
        gives each text's ids (start and end included)."""
        arr, t, counts = self._engine.embed_texts(_inputs.as_text_list(texts), bool(normalize))
        return Embeddings.wrap(arr, StageTimings.from_dict(t), list(counts))

    # ---- zero-shot classification -----------------------------------------------------------
    def classify(self, images: Union[ImageLike, Sequence[ImageLike]],
                 labels: Optional[Sequence[str]] = None, *,
                 templates: Union[None, str, Sequence[str]] = None,
                 top_k: Optional[int] = None, label_set: Optional[str] = None) -> Classification:
        """Zero-shot classification, as open_clip's ``zero_shot_classifier``: each label's
        prompts (``templates``: a list with ``{}``, ``"imagenet"`` for the 80 OpenAI ImageNet
        prompts, ``"simple"``, default ``"a photo of a {}."``) are encoded, normalized,
        averaged and re-normalized; ``prob = softmax(logit_scale * cosine)``. Give ``labels``
        or a registered ``label_set`` name. Returns per image its labels by decreasing
        probability (``top_k`` of them)."""
        if label_set is None and labels is None:
            raise _inputs.InvalidInput("give labels (with optional templates) or a label_set")
        tmpl = _inputs.template_list(templates, imagenet_templates(), simple_templates())
        lab = _inputs.label_list(labels) if labels is not None else []
        items = _inputs.engine_items(images, self._info["image_size"])
        rows, t, text_encoded = self._engine.classify(
            items, label_set or "", lab, tmpl, 0 if top_k is None else int(top_k))
        return Classification([[LabelScore(*s) for s in r] for r in rows],
                              StageTimings.from_dict(t), text_encoded)

    def put_label_set(self, name: str, labels: Sequence[str],
                      templates: Union[None, str, Sequence[str]] = None) -> bool:
        """Computes and stores the features of a named label set (used by
        ``classify(images, label_set=name)``); returns True when it replaced one."""
        tmpl = _inputs.template_list(templates, imagenet_templates(), simple_templates())
        return self._engine.put_label_set(name, _inputs.label_list(labels), tmpl)

    def get_label_set(self, name: str) -> Optional[LabelSet]:
        r = self._engine.get_label_set(name)
        return None if r is None else LabelSet(r[0], tuple(r[1]), tuple(r[2]))

    def delete_label_set(self, name: str) -> bool:
        return self._engine.delete_label_set(name)

    def label_sets(self) -> List[str]:
        return list(self._engine.label_set_names())

    # ---- the exact front-ends ---------------------------------------------------------------
    def tokenize(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """open_clip's ``tokenizer(texts)`` for this model: (N, context_length) int64."""
        return tokenize(texts, self._info["context_length"])

    def preprocess(self, image: ImageLike) -> np.ndarray:
        """open_clip's ``preprocess(image)`` (the eval transform) for one image: the float32
        (3, S, S) tensor ``encode_image`` would encode for it."""
        items = _inputs.engine_items(image, self._info["image_size"])
        if len(items) != 1:
            raise _inputs.InvalidInput(f"preprocess takes one image, got {len(items)}")
        return self._engine.preprocess(items[0])

    # ---- information ------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        """Architecture, embedding size, precision, backend, preprocessing values."""
        d = dict(self._info)
        core = {k: d.pop(k) for k in ("model_id", "embed_dim", "image_size", "context_length",
                                      "arch", "precision", "backend", "logit_scale")}
        return ModelInfo(**core, extra=d)

    @property
    def embed_dim(self) -> int:
        return self._info["embed_dim"]

    def stats(self) -> Dict[str, int]:
        """Engine counters: items and batches per tower, label-cache hits, queue depths."""
        return dict(self._engine.counters())

    def metrics_text(self) -> str:
        """The engine's metrics in Prometheus text format (what the server's /metrics shows)."""
        return self._engine.metrics_text()

    def close(self) -> None:
        """Waits for the calls in flight and frees the model; later calls raise Unavailable."""
        self._engine.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self._info
        return (f"clipserve.Model({i['model_id']!r}, embed_dim={i['embed_dim']}, "
                f"image_size={i['image_size']}, precision={i['precision']!r})")


def load(model: Union[str, "os.PathLike[str]"], *, precision: str = "fp32",
         threads: Optional[int] = None, backend: str = "cpu", max_batch: int = 16,
         max_wait_us: int = 5000, max_queue: int = 256, preprocess_threads: Optional[int] = None,
         warmup: bool = True, model_id: Optional[str] = None,
         label_cache: int = 20000) -> Model:
    """Loads a model into this process, like ``clipserve serve --model``.

    ``model``: a model directory (open_clip or HF transformers layout, safetensors or torch
    files) or a name the CLI takes (``ViT-B-32/laion2b_s34b_b79k``, ``hf-hub:org/repo``),
    downloaded into the Hugging Face cache on first use. ``precision``: ``"fp32"`` (exact)
    or ``"bf16"``; ``threads``: encoder threads (None = all cores); ``backend``: ``"cpu"``
    (oneDNN) or ``"reference"``; ``max_batch`` / ``max_wait_us``: how concurrent calls are
    batched; ``max_queue``: items admitted before :class:`Overloaded`; ``warmup``: run every
    batch size once so the first call is as fast as the rest.
    """
    native = _need_native()
    eng = native.Engine(os.fspath(model), backend, precision, int(threads or 0), int(max_batch),
                        int(max_wait_us), int(max_queue), int(preprocess_threads or 0),
                        bool(warmup), model_id or "", int(label_cache))
    return Model(eng)
