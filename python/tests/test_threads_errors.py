"""The GIL is released during decode and encode (concurrent Python threads are batched
together), and bad input raises a clipserve exception naming it, never a crash."""
import threading

import numpy as np
import pytest
from PIL import Image

import clipserve
from conftest import PHOTO


def test_concurrent_threads_are_batched_together(tiny_dir):
    """8 threads each encode one JPEG at the same moment. While one item is being decoded or
    encoded the others arrive, so the engine coalesces them: batches of more than one item.
    With the GIL held through a call, each call would run alone (every batch of 1)."""
    m = clipserve.load(tiny_dir, max_batch=8, max_wait_us=200000, warmup=False)
    jpeg = PHOTO.read_bytes()
    want = m.encode_image(jpeg)
    n, rounds = 8, 3
    results, errors = [], []
    barrier = threading.Barrier(n)
    before = m.stats()

    def worker():
        try:
            for _ in range(rounds):
                barrier.wait()
                results.append(m.encode_image(jpeg))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == n * rounds
    after = m.stats()
    items = after["image_items"] - before["image_items"]
    batches = after["image_batches"] - before["image_batches"]
    assert items == n * rounds
    assert batches < items, f"{items} items in {batches} batches: no call was batched"
    assert max(r.timings.max_batch for r in results) > 1
    for r in results:  # every thread got its own, correct row
        np.testing.assert_allclose(r, want, atol=2e-6, rtol=0)
    m.close()


def test_texts_from_threads_are_batched(tiny_dir):
    m = clipserve.load(tiny_dir, max_batch=16, max_wait_us=200000, warmup=False)
    n = 12
    out = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        barrier.wait()
        out[i] = m.encode_text([f"text number {i}"] * 4)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = m.stats()
    assert s["text_batches"] < s["text_items"]
    for i in range(n):
        np.testing.assert_allclose(out[i][0], m.encode_text(f"text number {i}")[0], atol=2e-6)
    m.close()


BAD_IMAGES = [
    (b"not an image", clipserve.InvalidInput, r"images\[0\]"),
    (PHOTO.read_bytes()[:2000], clipserve.InvalidInput, r"images\[0\]"),
    (b"", clipserve.InvalidInput, "empty"),
    ("/no/such/file.jpg", clipserve.NotFound, "/no/such/file.jpg"),
    (np.zeros((4, 5, 2), np.uint8), clipserve.InvalidInput, r"shape \(4, 5, 2\)"),
    (np.zeros((3, 100, 100), np.float32), clipserve.InvalidInput, "preprocessed tensor"),
    (np.zeros((0, 5, 3), np.uint8), clipserve.InvalidInput, r"images\[0\].*5x0"),
    ([str(PHOTO), object()], clipserve.InvalidInput, r"images\[1\]: unsupported image type"),
    (np.zeros((5, 5, 3), np.int16), clipserve.InvalidInput, "dtype int16"),
    (12345, clipserve.InvalidInput, "got int"),
    ([], clipserve.InvalidInput, "no images"),
    (None, clipserve.InvalidInput, "NoneType"),
]


@pytest.mark.parametrize("bad,exc,msg", BAD_IMAGES, ids=[repr(b)[:30] for b, _, _ in BAD_IMAGES])
def test_bad_images_raise(model, bad, exc, msg):
    with pytest.raises(exc, match=msg):
        model.encode_image(bad)
    with pytest.raises(clipserve.ClipserveError):
        model.classify(bad, ["a", "b"])


def test_bad_image_among_good_names_it(model):
    with pytest.raises(clipserve.InvalidInput, match=r"images\[2\]"):
        model.encode_image([str(PHOTO), PHOTO.read_bytes(), b"\xff\xd8\xff garbage"])
    assert model.encode_image(str(PHOTO)).shape == (1, 32)  # the model still works


def test_decompression_bomb_is_too_large(model):
    im = Image.new("L", (1, 1))
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 20000, 3), (0, 0, 0))
    with pytest.raises(clipserve.TooLarge):
        model.encode_image(big)
    assert im.size == (1, 1)


def test_bad_texts_raise(model):
    with pytest.raises(clipserve.InvalidInput, match=r"texts\[1\] must be a str"):
        model.encode_text(["ok", 3])
    with pytest.raises(clipserve.InvalidInput, match="surrogate"):
        model.encode_text(["ok", "bad \ud800 text"])
    with pytest.raises(clipserve.InvalidInput, match="bytes"):
        model.encode_text(b"bytes")
    with pytest.raises(clipserve.InvalidInput, match="no texts"):
        model.encode_text([])
    with pytest.raises(clipserve.InvalidInput):
        clipserve.tokenize(["x"], context_length=1)


def test_bad_classify_arguments(model):
    img = str(PHOTO)
    with pytest.raises(clipserve.InvalidInput, match="labels"):
        model.classify(img)
    with pytest.raises(clipserve.InvalidInput, match=r"\{\}"):
        model.classify(img, ["a"], templates=["no placeholder"])
    with pytest.raises(clipserve.InvalidInput, match="top_k"):
        model.classify(img, ["a"], top_k=-1)
    with pytest.raises(clipserve.NotFound):
        model.classify(img, label_set="never-registered")
    with pytest.raises(clipserve.InvalidInput):
        model.classify(img, ["a", 5])


def test_bad_load_arguments(tiny_dir, tmp_path):
    with pytest.raises(clipserve.NotFound):
        clipserve.load(tmp_path / "missing-model-dir")
    with pytest.raises(clipserve.ClipserveError):
        clipserve.load(tiny_dir, precision="fp7")
    with pytest.raises(clipserve.InvalidInput):
        clipserve.load(tiny_dir, max_batch=0)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "open_clip_config.json").write_text("{not json")
    with pytest.raises(clipserve.ClipserveError):
        clipserve.load(tmp_path / "broken")


def test_closed_model_raises_unavailable(tiny_dir):
    m = clipserve.load(tiny_dir, warmup=False)
    m.close()
    with pytest.raises(clipserve.Unavailable, match="closed"):
        m.encode_text("x")


def test_overloaded(tiny_dir):
    """A queue of 1 item: a call of 8 images is admitted alone (the queue was empty) and keeps
    the queue full while it runs; concurrent calls are refused with Overloaded."""
    m = clipserve.load(tiny_dir, max_queue=1, warmup=False)
    eight = [PHOTO.read_bytes()] * 8
    seen = []
    for _ in range(5):  # rounds until a refusal was seen (each round nearly always has one)
        barrier = threading.Barrier(6)

        def worker():
            barrier.wait()
            try:
                m.encode_image(eight)
            except clipserve.Overloaded as e:
                seen.append(e)

        ts = [threading.Thread(target=worker) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if seen:
            break
    assert seen, "six concurrent calls on a queue of one item: some must be refused"
    assert isinstance(seen[0], clipserve.ClipserveError) and "queue" in str(seen[0])
    assert m.stats()["overloaded"] >= 1
    m.close()


def test_exception_hierarchy():
    for cls in (clipserve.InvalidInput, clipserve.NotFound, clipserve.Overloaded,
                clipserve.Unavailable, clipserve.Unsupported, clipserve.TooLarge,
                clipserve.IoError, clipserve.InternalError, clipserve.Unauthorized):
        assert issubclass(cls, clipserve.ClipserveError)
    assert issubclass(clipserve.InvalidInput, ValueError)


def test_exit_with_daemon_threads_inside_the_engine(tiny_dir):
    """Daemon threads still encoding when the interpreter exits: a clean exit, no abort."""
    import subprocess
    import sys
    code = f"""
import threading, time, clipserve
m = clipserve.load({str(tiny_dir)!r}, warmup=False)
def spin():
    try:
        while True:
            m.encode_image({str(PHOTO)!r})
    except clipserve.Unavailable:
        pass
for _ in range(3):
    threading.Thread(target=spin, daemon=True).start()
time.sleep(0.3)
print("bye")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bye"


def test_hub_name_offline_raises_not_crashes(monkeypatch, tmp_path):
    """A hub name goes to the Hugging Face cache like the CLI's --model; offline and not
    cached, it is a clipserve error naming the model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(clipserve.ClipserveError, match="laion2b_s34b_b79k"):
        clipserve.load("ViT-B-32/laion2b_s34b_b79k")


def test_bf16_is_close_to_fp32(tiny_dir, model):
    m = clipserve.load(tiny_dir, precision="bf16", warmup=False)
    assert m.info.precision == "bf16"
    a, b = m.encode_image(str(PHOTO)), model.encode_image(str(PHOTO))
    assert float((a * b).sum()) > 0.99
    m.close()


def test_errors_return_gives_good_rows_and_names_bad_ones(model):
    good = str(PHOTO)
    imgs = [good, b"garbage", PHOTO.read_bytes(), "/no/such.jpg", np.zeros((2, 2, 2), np.uint8)]
    r = model.encode_image(imgs, errors="return")
    assert r.shape == (5, 32) and sorted(r.errors) == [1, 3, 4]
    assert isinstance(r.errors[1], clipserve.InvalidInput) and "images[1]" in str(r.errors[1])
    assert isinstance(r.errors[3], clipserve.NotFound)
    assert isinstance(r.errors[4], clipserve.InvalidInput) and "images[4]" in str(r.errors[4])
    want = model.encode_image(good)[0]
    for i in (0, 2):
        np.testing.assert_allclose(r[i], want, atol=2e-6)
    assert np.isnan(r[[1, 3, 4]]).all()
    ok = model.encode_image([good, good], errors="return")
    assert ok.errors == {} and not np.isnan(ok).any()
    with pytest.raises(clipserve.InvalidInput, match="errors"):
        model.encode_image(good, errors="ignore")


def test_native_module_refuses_malformed_items(model):
    """The extension checks what it is given even when called directly: errors, no crash."""
    e = model._engine
    jpeg = np.frombuffer(PHOTO.read_bytes(), np.uint8)
    strided = memoryview(np.repeat(jpeg, 2))[::2]
    assert model.encode_image(strided).shape == (1, 32)  # the package copies a strided view
    bad = [[5], [("bytes", strided, None)], [("pixels", (1, 2), None)],
           [("pixels", ("RGB", 10, 10, b"x" * 299, None), None)],
           [("pixels", ("P", 10, 10, b"x" * 100, b"x" * 800), None)],
           [("pixels", ("RGBZ", 10, 10, b"x" * 300, None), None)],
           [("tensor", b"abcd", None)], [("nope", 1, None)], [("path", 5, None)]]
    for items in bad:
        with pytest.raises(clipserve.ClipserveError):
            e.embed_images(items, True)
