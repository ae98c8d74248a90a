"""Writes ONNX graphs of a clipserve model directory's towers (open_clip_model.safetensors +
open_clip_config.json) with Debian's python3-onnx only (no PyTorch): the same forward pass as
open_clip (pre-LN blocks, exact GELU or QuickGELU, causal text mask, EOT pooling at argmax).
MatMuls take constant [K, N] weights, so ../shared/peers/onnxruntime/quantize_int8.py turns
them into ORT's dynamic int8 matmuls.
Usage: /usr/bin/python3 bench/onnx_export_clip.py MODEL_DIR OUT_DIR   (writes image.onnx, text.onnx)"""
import json
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return out


class G:
    def __init__(self, w):
        self.w, self.nodes, self.inits, self.n = w, [], [], 0

    def name(self, p="t"):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="c"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), nm))
        return nm

    def op(self, t, ins, **attrs):
        out = self.name(t.lower())
        self.nodes.append(helper.make_node(t, ins, [out], **attrs))
        return out

    def linear(self, x, wname, bname=None):  # torch Linear [out, in] -> MatMul with [in, out]
        y = self.op("MatMul", [x, self.const(self.w[wname].T.copy())])
        return self.op("Add", [y, self.const(self.w[bname])]) if bname else y

    def ln(self, x, p):
        return self.op("LayerNormalization", [x, self.const(self.w[p + ".weight"]),
                                              self.const(self.w[p + ".bias"])], axis=-1,
                       epsilon=1e-5)

    def block(self, x, p, width, heads, tokens, quick, mask):
        d = width // heads
        h = self.ln(x, p + "ln_1")
        qkv = self.linear(h, p + "attn.in_proj_weight", p + "attn.in_proj_bias")
        q, k, v = [self.name("s") for _ in range(3)]
        self.nodes.append(helper.make_node("Split", [qkv, self.const(np.array([width] * 3, np.int64))],
                                           [q, k, v], axis=-1))
        shp = self.const(np.array([0, tokens, heads, d], np.int64))
        q = self.op("Transpose", [self.op("Reshape", [q, shp])], perm=[0, 2, 1, 3])
        k = self.op("Transpose", [self.op("Reshape", [k, shp])], perm=[0, 2, 3, 1])
        v = self.op("Transpose", [self.op("Reshape", [v, shp])], perm=[0, 2, 1, 3])
        s = self.op("Mul", [self.op("MatMul", [q, k]), self.const(np.array(1.0 / np.sqrt(d), np.float32))])
        if mask is not None:
            s = self.op("Add", [s, mask])
        a = self.op("MatMul", [self.op("Softmax", [s], axis=-1), v])
        a = self.op("Reshape", [self.op("Transpose", [a], perm=[0, 2, 1, 3]),
                                self.const(np.array([0, tokens, width], np.int64))])
        x = self.op("Add", [x, self.linear(a, p + "attn.out_proj.weight", p + "attn.out_proj.bias")])
        h = self.linear(self.ln(x, p + "ln_2"), p + "mlp.c_fc.weight", p + "mlp.c_fc.bias")
        if quick:
            h = self.op("Mul", [h, self.op("Sigmoid", [self.op("Mul", [h, self.const(np.array(1.702, np.float32))])])])
        else:
            e = self.op("Erf", [self.op("Div", [h, self.const(np.array(np.sqrt(2.0), np.float32))])])
            h = self.op("Mul", [self.op("Mul", [h, self.op("Add", [e, self.const(np.array(1.0, np.float32))])]),
                                self.const(np.array(0.5, np.float32))])
        return self.op("Add", [x, self.linear(h, p + "mlp.c_proj.weight", p + "mlp.c_proj.bias")])

    def save(self, inp, out, path):
        graph = helper.make_graph(self.nodes, "clip", [inp], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                                  self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.save(m, path)


def main():
    mdir, odir = sys.argv[1], sys.argv[2]
    cfg = json.load(open(mdir + "/open_clip_config.json"))["model_cfg"]
    w = read_safetensors(mdir + "/open_clip_model.safetensors")
    quick = bool(cfg.get("quick_gelu", False))
    vc, tc = cfg["vision_cfg"], cfg["text_cfg"]

    g = G(w)  # image tower
    vw, p, size = vc["width"], vc["patch_size"], vc["image_size"]
    grid = size // p
    tokens = grid * grid + 1
    heads = vw // vc.get("head_width", 64)
    x = g.op("Conv", ["pixels", g.const(w["visual.conv1.weight"])], strides=[p, p])
    x = g.op("Transpose", [g.op("Reshape", [x, g.const(np.array([0, vw, grid * grid], np.int64))])], perm=[0, 2, 1])
    bsz = g.op("Gather", [g.op("Shape", ["pixels"]), g.const(np.array([0], np.int64))], axis=0)
    cls = g.op("Expand", [g.const(w["visual.class_embedding"].reshape(1, 1, vw)),
                          g.op("Concat", [bsz, g.const(np.array([1, vw], np.int64))], axis=0)])
    x = g.op("Add", [g.op("Concat", [cls, x], axis=1), g.const(w["visual.positional_embedding"])])
    x = g.ln(x, "visual.ln_pre")
    for i in range(vc["layers"]):
        x = g.block(x, f"visual.transformer.resblocks.{i}.", vw, heads, tokens, quick, None)
    x = g.ln(g.op("Gather", [x, g.const(np.array(0, np.int64))], axis=1), "visual.ln_post")
    x = g.op("MatMul", [x, g.const(w["visual.proj"])])
    g.save(helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, size, size]), x, odir + "/image.onnx")

    g = G(w)  # text tower
    tw, ctx = tc["width"], tc.get("context_length", 77)
    theads = tc.get("heads", 8)
    x = g.op("Add", [g.op("Gather", [g.const(w["token_embedding.weight"]), "ids"], axis=0),
                     g.const(w["positional_embedding"])])
    mask = g.const(np.triu(np.full((ctx, ctx), -np.inf, np.float32), 1))
    for i in range(tc["layers"]):
        x = g.block(x, f"transformer.resblocks.{i}.", tw, theads, ctx, quick, mask)
    eot = g.op("ArgMax", ["ids"], axis=1, keepdims=1)  # [B, 1]
    idx = g.op("Expand", [g.op("Unsqueeze", [eot, g.const(np.array([2], np.int64))]),
                          g.op("Concat", [g.op("Gather", [g.op("Shape", ["ids"]), g.const(np.array([0], np.int64))], axis=0),
                                          g.const(np.array([1, tw], np.int64))], axis=0)])
    x = g.op("Reshape", [g.op("GatherElements", [x, idx], axis=1), g.const(np.array([0, tw], np.int64))])
    x = g.op("MatMul", [g.ln(x, "ln_final"), g.const(w["text_projection"])])
    g.save(helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", ctx]), x, odir + "/text.onnx")


if __name__ == "__main__":
    main()
