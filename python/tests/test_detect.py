"""clipserve.load_detector / Client.detect on the compact OWL-ViT checkpoint of tests/data/owlvit
(written by transformers 4.30 + torch): transformers' detections from goldens.json, every input
type giving the same answer, the pipeline format, errors, and the HTTP client against a real
`clipserve serve --detect-model`."""
import json
import shutil
import subprocess
import threading
import zlib

import numpy as np
import pytest

import clipserve
from conftest import CLI, TEST_DATA, serve

OWL = TEST_DATA / "owlvit"
NAIL = OWL / "n03804744_nail.JPEG"
TENCH = OWL / "n01440764_tench.JPEG"
GOLDENS = json.loads((OWL / "golden" / "goldens.json").read_text())
QUERIES = ["a photo of a cat", "a photo of a dog"]


@pytest.fixture(scope="module")
def owl_dir(tmp_path_factory):
    """The compact checkpoint unpacked to a transformers model directory."""
    d = tmp_path_factory.mktemp("owlvit") / "owlvit-compact"
    d.mkdir()
    raw = zlib.decompress((OWL / "patch16-256.model.safetensors.zlib").read_bytes())
    (d / "model.safetensors").write_bytes(raw)
    shutil.copy(OWL / "patch16-256.config.json", d / "config.json")
    shutil.copy(OWL / "patch16-256.preprocessor_config.json", d / "preprocessor_config.json")
    return d


@pytest.fixture(scope="module")
def det(owl_dir):
    d = clipserve.load_detector(owl_dir, max_batch=2)
    yield d
    d.close()


def expect_golden(got, threshold):
    want = GOLDENS["object_detection"]["n03804744_nail.JPEG/q2"]["results"][f"{threshold:g}"]
    assert len(got) == len(want["scores"])
    for d, score, label, box in zip(got, want["scores"], want["labels"], want["boxes_xyxy"]):
        assert d.label_index == label and d.label == QUERIES[label]
        assert d.score == pytest.approx(score, abs=1e-5)
        assert d.box == pytest.approx(tuple(box), abs=1e-2)


@pytest.mark.parametrize("threshold", GOLDENS["object_detection"]["n03804744_nail.JPEG/q2"]
                         ["thresholds"])
def test_detect_matches_transformers(det, owl_dir, threshold):
    r = det.detect(NAIL, QUERIES, threshold=threshold)
    assert r.image_size == (183, 280)
    expect_golden(r, threshold)
    t = r.as_transformers()  # post_process_object_detection's dict, as numpy
    want = GOLDENS["object_detection"]["n03804744_nail.JPEG/q2"]["results"][f"{threshold:g}"]
    np.testing.assert_allclose(t["scores"], want["scores"], atol=1e-5)
    np.testing.assert_array_equal(t["labels"], want["labels"])
    np.testing.assert_allclose(t["boxes"], np.asarray(want["boxes_xyxy"]).reshape(-1, 4), atol=1e-2)
    assert r.logits.shape == (det.info["boxes"], 2) and r.logits.dtype == np.float32
    assert r.pred_boxes.shape == (det.info["boxes"], 4)
    # The CLI prints the same detections (transformers' order and semantics).
    out = subprocess.run([CLI, "detect", "--model", str(owl_dir), "--queries",
                          ",".join(QUERIES), "--threshold", str(threshold), str(NAIL)],
                         capture_output=True, text=True, check=True).stdout
    cli = json.loads(out.splitlines()[0])["detections"]
    assert [(c["label_index"], c["score"], tuple(c["box"])) for c in cli] == \
        [(d.label_index, pytest.approx(d.score, abs=1e-6), pytest.approx(d.box, abs=1e-3))
         for d in r]


def test_every_input_type_gives_the_same_answer(det):
    want = det.detect(NAIL, QUERIES, threshold=0.84)
    data = NAIL.read_bytes()
    for image in (str(NAIL), data, bytearray(data), memoryview(data)):
        r = det.detect(image, QUERIES, threshold=0.84)
        assert r.image_cached
        assert [(d.label_index, d.score, d.box) for d in r] == \
            [(d.label_index, d.score, d.box) for d in want]
    pil = pytest.importorskip("PIL.Image")
    im = pil.open(NAIL)
    im.load()
    # Pillow's decode of the JPEG is clipserve's (Pillow-exact), sent as a lossless PNG.
    for x in (im, im.convert("RGB"), np.asarray(im.convert("RGB")), im.convert("CMYK")):
        r = det.detect(x, QUERIES, threshold=0.84)
        np.testing.assert_array_equal(r.logits, want.logits)
        assert r.image_size == (183, 280)


def test_new_queries_on_a_cached_image_and_options(det):
    det.detect(TENCH, ["a fish"])
    r = det.detect(TENCH, ["a fish", "a tench"], threshold=0.0, top_k=3, nms=0.5,
                   clip_boxes=True)
    assert r.image_cached and r.queries_encoded == 1
    assert len(r) == 3 and [d.score for d in r] == sorted((d.score for d in r), reverse=True)
    w, h = r.image_size
    for d in r:
        assert 0 <= d.box[0] <= d.box[2] <= w and 0 <= d.box[1] <= d.box[3] <= h
    s = det.stats()
    assert s["image_cache_hits"] >= 1 and s["query_cache_hits"] >= 1


def test_pipeline_format_scores_each_label_alone(det):
    out = det.pipeline(NAIL, QUERIES, threshold=0.84)
    per_label = [(q, d) for q in QUERIES for d in det.detect(NAIL, [q], threshold=0.84)]
    assert len(out) == len(per_label)
    assert [r["score"] for r in out] == sorted((r["score"] for r in out), reverse=True)
    want = sorted(((d.score, q, tuple(int(v) for v in d.box)) for q, d in per_label),
                  key=lambda t: -t[0])
    assert [(r["score"], r["label"], tuple(r["box"].values())) for r in out] == want
    assert set(out[0]["box"]) == {"xmin", "ymin", "xmax", "ymax"}
    assert len(det.pipeline(NAIL, QUERIES, threshold=0.84, top_k=2)) == 2


@pytest.mark.parametrize("threshold", [0.6, 0.9])
def test_image_guided_matches_transformers(det, threshold):
    g = GOLDENS["image_guided"]
    pp = GOLDENS["image_guided_postprocess"]
    r = det.detect_by_example(OWL / g["target"], OWL / g["query"], threshold=threshold)
    assert r.example_box_index == g["best_box_index"]
    assert r.image_size == (pp["target_size_hw"][1], pp["target_size_hw"][0])
    want = pp["results"][f"threshold={threshold:g},nms_threshold=0.3"]
    assert len(r) == len(want["scores"])
    for d, score, box in zip(r, want["scores"], want["boxes_xyxy"]):
        assert d.score == pytest.approx(score, abs=1e-5)
        assert d.box == pytest.approx(tuple(box), abs=1e-2)


def test_errors_are_clear(det):
    with pytest.raises(clipserve.InvalidInput, match="no queries"):
        det.detect(NAIL, [])
    with pytest.raises(clipserve.InvalidInput, match="longer than 16 tokens"):
        det.detect(NAIL, ["a very long query " * 5])
    r = det.detect(NAIL, ["a very long query " * 5], truncate=True)
    assert r.truncated_queries == [0]
    with pytest.raises(clipserve.InvalidInput):
        det.detect(b"not an image", ["a cat"])
    with pytest.raises(clipserve.Unsupported, match="original image"):
        det.detect(np.zeros((3, 256, 256), np.float32), ["a cat"])
    with pytest.raises(clipserve.NotFound):
        det.detect("/nonexistent/x.jpg", ["a cat"])
    with pytest.raises(clipserve.InvalidInput, match="box must be 4"):
        det.detect_by_example(NAIL, NAIL, box=[1, 2, 3])
    with pytest.raises(clipserve.InvalidInput, match="x1 > x0"):
        det.detect_by_example(NAIL, NAIL, box=[10, 10, 5, 20])


def test_threads_share_the_detector(det):
    want = det.detect(NAIL, QUERIES, threshold=0.84)
    results, errors = [], []

    def work(i):
        try:
            results.append(det.detect(NAIL if i % 2 else TENCH, QUERIES if i % 2 else ["x"]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(results) == 6
    again = det.detect(NAIL, QUERIES, threshold=0.84)
    np.testing.assert_array_equal(again.logits, want.logits)


def test_closed_detector_refuses_calls(owl_dir):
    d = clipserve.load_detector(owl_dir, warmup=False)
    assert "Detector(" in repr(d)
    d.close()
    with pytest.raises(clipserve.Unavailable):
        d.detect(NAIL, ["a cat"])


@pytest.fixture(scope="module")
def detect_server(tiny_dir, owl_dir):
    for url in serve("--model", tiny_dir, "--detect-model", owl_dir, timeout=120):
        yield clipserve.Client(url)


def test_client_detect_matches_in_process(det, detect_server):
    for threshold in GOLDENS["object_detection"]["n03804744_nail.JPEG/q2"]["thresholds"]:
        r = detect_server.detect(NAIL, QUERIES, threshold=threshold)
        expect_golden(r, threshold)
        assert r.image_size == (183, 280) and r.timings.http_ms > 0
    local = det.detect(TENCH, ["a fish"], threshold=0.0, top_k=5, sort=True)
    remote = detect_server.detect(TENCH, ["a fish"], threshold=0.0, top_k=5, sort=True)
    assert [(d.label, d.score, d.box) for d in remote] == \
        [(d.label, pytest.approx(d.score, abs=1e-6), pytest.approx(d.box, abs=1e-3))
         for d in local]
    ex_local = det.detect_by_example(NAIL, TENCH, box=[10, 10, 100, 60])
    ex_remote = detect_server.detect_by_example(NAIL, TENCH, box=[10, 10, 100, 60])
    assert ex_remote.example_box_index == ex_local.example_box_index
    assert len(ex_remote) == len(ex_local)
    with pytest.raises(clipserve.InvalidInput, match="longer than 16 tokens"):
        detect_server.detect(NAIL, ["a very long query " * 5])
