"""clipserve.Client(model=...) against a real `clipserve serve` hosting two models (two
synthetic weight sets): each client gets its own model's numbers (equal to that model loaded
in-process), label sets and stats are per model, an unknown model is NotFound."""
import re
import subprocess
import threading
import time

import numpy as np
import pytest

import clipserve
from conftest import CLI, PHOTO, TEST_DATA, run_cli


@pytest.fixture(scope="module")
def two(tmp_path_factory, tiny_dir):
    other = tmp_path_factory.mktemp("model-b") / "tiny-b"
    run_cli("synth-model", "--config", TEST_DATA / "engine" / "tiny_config.json", "--seed", "3",
            "--out", other)
    proc = subprocess.Popen([CLI, "serve", "--model", str(tiny_dir), "--model-id", "a",
                             "--model", str(other), "--model-id", "b", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url, lines, deadline = None, [], time.monotonic() + 60
    while time.monotonic() < deadline and url is None:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        url = m.group(1) if m else None
    if url is None:
        proc.kill()
        raise AssertionError("clipserve serve did not start: " + "".join(lines))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    clipserve.Client(url).wait_ready(60)
    yield url, clipserve.load(tiny_dir), clipserve.load(other)
    proc.terminate()
    proc.wait(timeout=30)


def test_each_client_gets_its_model(two):
    url, model_a, model_b = two
    a, b, default = clipserve.Client(url, model="a"), clipserve.Client(url, model="b"), \
        clipserve.Client(url)
    assert (a.info.model_id, b.info.model_id, default.info.model_id) == ("a", "b", "a")
    assert a.ready() and b.ready()
    p = str(PHOTO)
    assert np.array_equal(a.encode_image(p), model_a.encode_image(p))
    assert np.array_equal(b.encode_image(p), model_b.encode_image(p))
    assert not np.array_equal(a.encode_image(p), b.encode_image(p))
    assert np.array_equal(b.encode_text("a dog"), model_b.encode_text("a dog"))
    assert np.array_equal(b.encode_text("a dog", normalize=False),
                          model_b.encode_text("a dog", normalize=False))
    got = b.classify(p, ["cat", "dog"])
    want = model_b.classify(p, ["cat", "dog"])
    assert [s.label for s in got[0]] == [s.label for s in want[0]]
    np.testing.assert_allclose([s.prob for s in got[0]], [s.prob for s in want[0]], atol=1e-6)


def test_label_sets_and_stats_are_per_model(two):
    url, _, _ = two
    a, b = clipserve.Client(url, model="a"), clipserve.Client(url, model="b")
    b.put_label_set("pets", ["cat", "dog"])
    assert "pets" in b.label_sets() and "pets" not in a.label_sets()
    assert b.get_label_set("pets").labels == ("cat", "dog") and a.get_label_set("pets") is None
    assert b.classify(str(PHOTO), label_set="pets")[0][0].label in ("cat", "dog")
    before = a.stats()["text_items"]
    b.encode_text(["x", "y"])
    assert a.stats()["text_items"] == before
    assert b.stats()["text_items"] >= 2


def test_unknown_model_is_not_found(two):
    url, _, _ = two
    c = clipserve.Client(url, model="nope")
    with pytest.raises(clipserve.NotFound, match="serves 'a', 'b'"):
        c.encode_text("x")
    assert not c.ready()
