"""In-process exactness: preprocess and embeddings against the C++ CLI, the preprocess
goldens and open_clip's transform (every PIL mode), tokenizer ids against the goldens."""
import gzip
import json

import numpy as np
import pytest
from PIL import Image

import clipserve
from conftest import (IMAGE_DIR, PHOTO, SHARED, TEST_DATA, TEST_IMAGES, golden_tensor,
                      open_clip_transform, run_cli)


def test_contract_shapes_and_normalization(model):
    e = model.encode_image([str(PHOTO), str(PHOTO)])
    t = model.encode_text(["a photo of a dog.", "a cat", "x"])
    assert isinstance(e, np.ndarray) and e.dtype == np.float32 and e.shape == (2, 32)
    assert t.dtype == np.float32 and t.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-6)
    raw = model.encode_image(str(PHOTO), normalize=False)
    assert abs(np.linalg.norm(raw) - 1) > 1e-3
    np.testing.assert_allclose(raw[0] / np.linalg.norm(raw[0]), e[0], atol=1e-6)
    assert e.timings.batches >= 1 and e.timings.total_ms > 0 and e.timings.encode_ms > 0
    assert t.token_counts == [8, 4, 3]


def test_info(model):
    i = model.info
    assert (i.embed_dim, i.image_size, i.context_length, i.precision) == (32, 224, 77, "fp32")
    assert i.model_id == "tiny" and abs(i.logit_scale - 100.0) < 1e-3


@pytest.mark.parametrize("path", TEST_IMAGES, ids=lambda p: p.name)
def test_preprocess_path_and_pil_equal_the_golden_crops(model, path):
    """tests/data/image/golden/<file>.224.png is open_clip's uint8 crop (before ToTensor)."""
    golden = IMAGE_DIR / "golden" / f"{path.name}.224.png"
    want = golden_tensor(np.asarray(Image.open(golden).convert("RGB")))
    assert np.array_equal(model.preprocess(str(path)), want)
    assert np.array_equal(model.preprocess(path.read_bytes()), want)
    with Image.open(path) as im:
        assert np.array_equal(model.preprocess(im), want), im.mode


def test_preprocess_matches_cli(model, tmp_path):
    paths = [str(p) for p in TEST_IMAGES]
    run_cli("preprocess", "--size", "224", "--out", tmp_path, *paths)
    for p in TEST_IMAGES:
        assert np.array_equal(model.preprocess(str(p)), np.load(tmp_path / f"{p.name}.npy")), p


def shared_goldens():
    d = SHARED / "fixtures" / "golden" / "preprocess"
    if not (d / "manifest.json").exists():
        return []
    m = json.loads((d / "manifest.json").read_text())
    return [(d / im["file"], d / im["goldens"]["224"]["npy"]) for im in m["images"]
            if "224" in im.get("goldens", {})]


@pytest.mark.skipif(not shared_goldens(), reason="../shared/fixtures/golden/preprocess absent "
                    "(the tests/data goldens above still run)")
def test_preprocess_shared_goldens_path_and_pil(model):
    checked = 0
    for img, npy in shared_goldens():
        want = np.load(npy)
        assert np.array_equal(model.preprocess(str(img)), want), img.name
        with Image.open(img) as im:
            assert np.array_equal(model.preprocess(im), want), (img.name, im.mode)
        checked += 1
    assert checked >= 40


# Every Pillow mode, made from one photo; open_clip resizes in the image's own mode.
def pil_in_mode(mode):
    base = Image.open(PHOTO).convert("RGB").resize((97, 64), Image.BICUBIC)
    if mode in ("LAB", "PA", "La", "RGBa", "RGBX"):
        rng = np.random.default_rng(7)
        chans = {"LAB": 3, "PA": 2, "La": 2, "RGBa": 4, "RGBX": 4}[mode]
        data = rng.integers(0, 256, size=(64, 97, chans), dtype=np.uint8)
        if mode in ("La", "RGBa"):  # premultiplied: colour <= alpha
            data[..., :-1] = np.minimum(data[..., :-1], data[..., -1:])
        im = Image.frombytes(mode, (97, 64), data.tobytes())
        if mode == "PA":
            im.putpalette(list(rng.integers(0, 256, 768, dtype=np.uint8)))
        return im
    if mode == "I":
        return Image.fromarray((np.asarray(base.convert("L"), np.int32) * 300 - 20000))
    if mode == "F":
        return base.convert("F")
    if mode == "P":
        return base.quantize(50)
    if mode == "P_adaptive":
        return base.convert("P", palette=Image.ADAPTIVE, colors=7)
    return base.convert(mode)


ALL_MODES = ["1", "L", "P", "P_adaptive", "LA", "PA", "RGB", "RGBA", "RGBX", "RGBa", "La",
             "CMYK", "YCbCr", "LAB", "HSV", "I", "F"]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_pil_every_mode_matches_open_clip_transform(model, cli_embed, tmp_path, mode):
    im = pil_in_mode(mode)
    try:
        want = open_clip_transform(im)
    except ValueError as e:  # open_clip fails on it too (e.g. La: no conversion to RGB)
        with pytest.raises(clipserve.Unsupported, match=mode):
            model.preprocess(im)
        return  # Pillow cannot transform this mode either: Unsupported is the expected answer
    got = model.preprocess(im)
    assert got.shape == (3, 224, 224) and got.dtype == np.float32
    assert np.array_equal(got, want), mode
    # ... and its embedding equals `clipserve embed` of the same tensor.
    np.save(tmp_path / "x.npy", want)
    assert np.array_equal(model.encode_image(im), cli_embed([tmp_path / "x.npy"]))


def test_pil_16bit_mode_fails_as_open_clip_does(model):
    im = Image.fromarray(np.full((10, 12), 300, np.uint16))  # mode I;16
    assert im.mode == "I;16"
    with pytest.raises(clipserve.Unsupported, match="I;16"):
        model.encode_image(im)


def test_numpy_uint8_equals_pil_fromarray(model):
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    for a in (rgb, rgb[:, :, 0], np.dstack([rgb, rgb[:, :, :1]])):
        assert np.array_equal(model.preprocess(a), open_clip_transform(Image.fromarray(a)))
    # Non-contiguous views are fine too.
    view = rgb[::2, ::3]
    assert np.array_equal(model.preprocess(view), open_clip_transform(Image.fromarray(
        np.ascontiguousarray(view))))


def test_encode_image_paths_pil_numpy_equal_cli_embed(model, cli_embed):
    """Rows identical to `clipserve embed` (one image per call: the same batch of 1)."""
    for p in TEST_IMAGES + [PHOTO]:
        want = cli_embed([p])
        assert np.array_equal(model.encode_image(str(p)), want), p
        with Image.open(p) as im:
            assert np.array_equal(model.encode_image(im), want), p
        if Image.open(p).mode == "RGB":
            assert np.array_equal(model.encode_image(np.asarray(Image.open(p))), want), p


def test_encode_image_list_close_to_cli_embed(model, cli_embed):
    """A list goes through the engine's batches (sizes may differ from the CLI's 16): rows
    agree to float32 rounding of a different GEMM blocking, and are in input order."""
    paths = [str(p) for p in TEST_IMAGES]
    want = cli_embed(paths)
    got = model.encode_image(paths)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
    mixed = [paths[0], Image.open(paths[1]), open(paths[2], "rb").read(),
             model.preprocess(paths[3])]
    np.testing.assert_allclose(model.encode_image(mixed), want[:4], atol=2e-6, rtol=0)


def test_preprocessed_tensors(model, cli_embed, tmp_path):
    x = model.preprocess(str(PHOTO))
    np.save(tmp_path / "p.npy", x)
    want = cli_embed([tmp_path / "p.npy"])
    assert np.array_equal(model.encode_image(x[None]), want)          # (1, 3, S, S)
    assert np.array_equal(model.encode_image([x]), want)              # list of (3, S, S)
    assert np.array_equal(model.encode_image(x.astype(np.float64)[None]), want)
    raw = cli_embed([tmp_path / "p.npy"], raw=True)
    assert np.array_equal(model.encode_image(x[None], normalize=False), raw)


def test_encode_text_equals_cli_embed(model, cli_embed):
    texts = ["a photo of a dog.", "Ünïcödé text ☃", "x" * 400]
    for t in texts:
        assert np.array_equal(model.encode_text(t), cli_embed([f"text:{t}"])), t
    np.testing.assert_allclose(model.encode_text(texts), cli_embed([f"text:{t}" for t in texts]),
                               atol=2e-6, rtol=0)


def tokenizer_goldens():
    local = TEST_DATA / "tokenizer" / "visible.jsonl.gz"
    shared = SHARED / "fixtures" / "golden" / "tokenizer" / "visible.jsonl"
    if shared.exists():
        return [json.loads(l) for l in shared.read_text(encoding="utf-8").splitlines() if l]
    with gzip.open(local, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def test_tokenizer_goldens():
    rows = tokenizer_goldens()
    assert len(rows) > 3000
    texts = [r["text"] for r in rows]
    ids = clipserve.tokenize(texts)
    assert ids.shape == (len(rows), 77) and ids.dtype == np.int64
    for i, r in enumerate(rows):
        n = len(r["ids"])
        assert ids[i, :n].tolist() == r["ids"], r["text"]
        assert not ids[i, n:].any()


def test_model_tokenize_and_cli(model):
    import subprocess
    from conftest import CLI
    texts = ["a photo of a dog.", "hello", "z" * 300]
    got = model.tokenize(texts)
    cli = subprocess.run([CLI, "tokenize"], input="".join(json.dumps({"text": t}) + "\n"
                                                          for t in texts),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    for i, line in enumerate(cli):
        ids = json.loads(line)["ids"]
        assert got[i, :len(ids)].tolist() == ids and not got[i, len(ids):].any()
    got = model.tokenize(["a photo of a dog.", "hello"])
    assert got[0, :8].tolist() == [49406, 320, 1125, 539, 320, 1929, 269, 49407]
    assert got.shape == (2, 77)
    assert clipserve.tokenize("a b", context_length=3).tolist() == [[49406, 320, 49407]]


def test_classify_and_label_sets(model):
    img = str(PHOTO)
    feats = model.encode_image(img)
    labels = ["dog", "cat", "car"]
    r = model.classify(img, labels, templates=["a photo of a {}.", "a {}"])
    assert len(r) == 1 and [s.label for s in r[0]] != [] and r.timings.total_ms > 0
    # open_clip's zero-shot recipe on our own features.
    w = []
    for l in labels:
        t = model.encode_text([f"a photo of a {l}.", f"a {l}"])
        m = t.mean(0)
        w.append(m / np.linalg.norm(m))
    cos = feats[0] @ np.stack(w).T
    logits = model.info.logit_scale * cos
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {s.label: (s.prob, s.cosine) for s in r[0]}
    for i, l in enumerate(labels):
        assert abs(got[l][1] - cos[i]) < 1e-5 and abs(got[l][0] - probs[i]) < 1e-4
    assert [s.prob for s in r[0]] == sorted([s.prob for s in r[0]], reverse=True)
    top = model.classify([img, img], labels, top_k=2)
    assert [len(x) for x in top] == [2, 2]
    fresh = ["tench", "goldfish", "shark"]
    assert model.classify(img, fresh, templates="imagenet").text_encoded == 80 * 3
    assert model.classify(img, fresh, templates="imagenet").text_encoded == 0  # cached

    assert model.put_label_set("pets", ["dog", "cat"], templates="simple") is False
    assert model.put_label_set("pets", ["dog", "cat"]) is True
    assert "pets" in model.label_sets()
    ls = model.get_label_set("pets")
    assert ls.labels == ("dog", "cat") and ls.templates == ("a photo of a {}.",)
    named = model.classify(img, label_set="pets")
    inline = model.classify(img, ["dog", "cat"])
    assert named == inline
    assert model.delete_label_set("pets") and model.get_label_set("pets") is None
    with pytest.raises(clipserve.NotFound, match="pets"):
        model.classify(img, label_set="pets")


def test_templates_are_open_clips():
    t = clipserve.imagenet_templates()
    assert len(t) == 80 and t[0] == "a bad photo of a {}."
    assert clipserve.simple_templates() == ["a photo of a {}."]
