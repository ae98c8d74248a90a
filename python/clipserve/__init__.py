"""clipserve: open_clip-exact CLIP embeddings and zero-shot classification.

In-process::

    import clipserve
    model = clipserve.load("models/vit-b-32")          # a directory or a hub name
    img = model.encode_image(["cat.jpg", pil_image])   # (N, D) float32, normalized
    txt = model.encode_text(["a photo of a cat"])
    res = model.classify("cat.jpg", ["cat", "dog"], templates="imagenet")

Against a server (``clipserve serve``), with the same methods and exceptions::

    client = clipserve.Client("http://127.0.0.1:8080")
    img = client.encode_image(["cat.jpg"])

Open-vocabulary detection (OWL-ViT), transformers' numbers::

    det = clipserve.load_detector("google/owlvit-base-patch32")
    for d in det.detect("kitchen.jpg", ["a red mug", "a cat"]):
        print(d.label, d.score, d.box)                  # box: x0, y0, x1, y1 in pixels

Errors derive from :class:`ClipserveError` (InvalidInput, NotFound, Overloaded, ...).
"""
from ._errors import (ClipserveError, ConnectionFailed, InternalError, InvalidInput, IoError, NotFound,
                      Overloaded, TooLarge, Unauthorized, Unavailable, Unsupported)
from ._types import (Classification, Embeddings, LabelScore, LabelSet, ModelInfo,
                     StageTimings)
from .client import Client
from .detect import Detection, Detections, Detector, load_detector
from .model import Model, imagenet_templates, load, simple_templates, tokenize

__version__ = "0.1.0"

__all__ = [
    "load", "Model", "Client", "load_detector", "Detector", "Detection", "Detections", "tokenize", "imagenet_templates", "simple_templates",
    "Embeddings", "Classification", "LabelScore", "LabelSet", "ModelInfo", "StageTimings",
    "ClipserveError", "InvalidInput", "NotFound", "IoError", "Unsupported", "TooLarge",
    "Overloaded", "Unavailable", "Unauthorized", "InternalError", "ConnectionFailed",
]
