"""clipserve.Client against a real `clipserve serve` (started by the fixture on a free loopback
port): the same results as in-process, bit for bit, and the same exception types."""
import numpy as np
import pytest
from PIL import Image

import clipserve
from conftest import PHOTO, TEST_IMAGES
from test_inprocess import pil_in_mode


@pytest.fixture(scope="module")
def client(server):
    return clipserve.Client(server, api_key="test-key")


def test_info_and_ready(client, model):
    assert client.ready()
    i = client.info
    assert (i.model_id, i.embed_dim, i.image_size, i.context_length) == ("tiny", 32, 224, 77)


def test_images_identical_to_in_process(client, model):
    paths = [str(p) for p in TEST_IMAGES]
    for p in paths:  # one per request: the same batch of one as in-process
        assert np.array_equal(client.encode_image(p), model.encode_image(p)), p
    got = client.encode_image(paths)
    assert got.shape == (len(paths), 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, model.encode_image(paths), atol=2e-6, rtol=0)
    assert got.timings is not None and got.timings.http_ms > 0


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I", "YCbCr",
                                  "HSV", "RGBX", "F"])
def test_pil_and_numpy_identical_to_in_process(client, model, mode):
    im = pil_in_mode(mode)
    assert np.array_equal(client.encode_image(im), model.encode_image(im)), mode


def test_numpy_and_bytes_identical(client, model):
    a = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert np.array_equal(client.encode_image(a), model.encode_image(a))
    assert np.array_equal(client.encode_image(PHOTO.read_bytes()), model.encode_image(str(PHOTO)))


def test_raw_features_identical(client, model):
    p = str(PHOTO)
    assert np.array_equal(client.encode_image(p, normalize=False),
                          model.encode_image(p, normalize=False))
    assert np.array_equal(client.encode_text("a dog", normalize=False),
                          model.encode_text("a dog", normalize=False))


def test_texts_identical(client, model):
    for t in ["a photo of a dog.", "Ünïcödé ☃", "y" * 500]:
        assert np.array_equal(client.encode_text(t), model.encode_text(t)), t
    texts = [f"caption {i}" for i in range(70)]  # > max_items_per_request: two requests
    np.testing.assert_allclose(client.encode_text(texts), model.encode_text(texts), atol=2e-6)
    assert np.array_equal(client.tokenize(["a b"]), model.tokenize(["a b"]))


def test_classify_identical(client, model):
    img = str(PHOTO)
    for kw in [dict(labels=["dog", "cat", "car"]),
               dict(labels=["dog", "cat", "car"], templates="imagenet", top_k=2),
               dict(labels=["dog", "cat"], templates=["a {} photo", "the {}"])]:
        a, b = client.classify(img, **kw), model.classify(img, **kw)
        assert [[s.label for s in r] for r in a] == [[s.label for s in r] for r in b]
        for ra, rb in zip(a, b):
            for sa, sb in zip(ra, rb):
                assert sa.prob == pytest.approx(sb.prob, abs=1e-6)
                assert sa.cosine == pytest.approx(sb.cosine, abs=1e-6)


def test_label_sets(client, model):
    assert client.put_label_set("animals", ["dog", "cat"], templates="simple") is False
    assert client.put_label_set("animals", ["dog", "cat", "bird"]) is True
    assert "animals" in client.label_sets()
    ls = client.get_label_set("animals")
    assert ls.labels == ("dog", "cat", "bird")
    r = client.classify(str(PHOTO), label_set="animals")
    assert sorted(s.label for s in r[0]) == ["bird", "cat", "dog"]
    assert client.delete_label_set("animals") is True
    assert client.get_label_set("animals") is None
    assert client.delete_label_set("animals") is False


def test_same_exceptions_as_in_process(client, model):
    cases = [
        (lambda m: m.encode_image(b"not an image"), clipserve.InvalidInput),
        (lambda m: m.encode_image(PHOTO.read_bytes()[:3000]), clipserve.InvalidInput),
        (lambda m: m.encode_image("/no/such/file.jpg"), clipserve.NotFound),
        (lambda m: m.encode_image(np.zeros((4, 4, 2), np.uint8)), clipserve.InvalidInput),
        (lambda m: m.encode_text(["ok", 3]), clipserve.InvalidInput),
        (lambda m: m.classify(str(PHOTO), label_set="nope"), clipserve.NotFound),
        (lambda m: m.classify(str(PHOTO), ["a"], templates=["no placeholder"]),
         clipserve.InvalidInput),
        (lambda m: m.classify(str(PHOTO), ["a"], top_k=-1), clipserve.InvalidInput),
        (lambda m: m.encode_image(Image.fromarray(np.zeros((3, 3), np.uint16))),
         clipserve.Unsupported),
    ]
    for i, (call, exc) in enumerate(cases):
        for target in (model, client):
            with pytest.raises(exc):
                call(target)


def test_client_only_errors(server):
    with pytest.raises(clipserve.Unauthorized):
        clipserve.Client(server).encode_text("x")
    with pytest.raises(clipserve.Unauthorized):
        clipserve.Client(server, api_key="wrong").encode_text("x")
    with pytest.raises(clipserve.ConnectionFailed):
        clipserve.Client("http://127.0.0.1:9", timeout=5).encode_text("x")
    with pytest.raises(clipserve.IoError):  # ConnectionFailed is an IoError (and an OSError)
        clipserve.Client("http://127.0.0.1:9", timeout=5).encode_image(str(PHOTO),
                                                                        errors="return")
    c = clipserve.Client(server, api_key="test-key")
    with pytest.raises(clipserve.Unsupported):
        c.encode_image(np.zeros((3, 224, 224), np.float32))
    with pytest.raises(clipserve.Unsupported):
        c.preprocess(str(PHOTO))


def test_stats_over_http(client):
    before = client.stats()
    client.encode_image(str(PHOTO))
    after = client.stats()
    assert after["image_items"] == before["image_items"] + 1


def test_errors_return_same_as_in_process(client, model):
    imgs = [str(PHOTO), b"garbage", PHOTO.read_bytes(), "/no/such.jpg"]
    a, b = client.encode_image(imgs, errors="return"), model.encode_image(imgs, errors="return")
    assert sorted(a.errors) == sorted(b.errors) == [1, 3]
    for i in a.errors:
        assert type(a.errors[i]) is type(b.errors[i])
    assert np.array_equal(a[[0, 2]], b[[0, 2]]) and np.isnan(a[[1, 3]]).all()
