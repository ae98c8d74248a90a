// The restricted unpickler of torch.save checkpoints (see torch_pickle.h).
#include "model/torch_pickle.h"

#include <cstring>
#include <unordered_map>

#include "core/check.h"

namespace clipserve::torch_pickle {

const std::map<std::string, StDType> kStorageTypes = {
    {"torch.FloatStorage", StDType::kF32},     {"torch.HalfStorage", StDType::kF16},
    {"torch.BFloat16Storage", StDType::kBF16}, {"torch.DoubleStorage", StDType::kF64},
    {"torch.LongStorage", StDType::kI64},      {"torch.IntStorage", StDType::kI32},
    {"torch.ShortStorage", StDType::kI16},     {"torch.CharStorage", StDType::kI8},
    {"torch.ByteStorage", StDType::kU8},       {"torch.BoolStorage", StDType::kBool},
};

namespace {

uint64_t rd(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

PPtr make(PValue::Kind k) {
  auto p = std::make_shared<PValue>();
  p->kind = k;
  return p;
}

const char* const kCallables[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                  "torch._utils._rebuild_tensor",
                                  "torch._utils._rebuild_parameter"};

bool global_allowed(const std::string& name) {
  if (kStorageTypes.count(name)) return true;
  for (const char* c : kCallables)
    if (name == c) return true;
  return false;
}

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> data, std::string src) : d_(data), src_(std::move(src)) {}

  PPtr run() {
    for (;;) {
      uint8_t op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          uint8_t v = byte();
          check(v <= 5, "unsupported pickle protocol ", int(v));
          break;
        }
        case 0x95:
          bytes(8);
          break;  // FRAME: length hint only
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '.': {  // STOP
          check(stack_.size() == 1 && marks_.empty(), "malformed pickle at STOP");
          return stack_.back();
        }
        case '}':
          push(make(PValue::kDict));
          break;
        case ']':
          push(make(PValue::kList));
          break;
        case ')':
          push(make(PValue::kTuple));
          break;
        case 'N':
          push(make(PValue::kNone));
          break;
        case 0x88:
        case 0x89: {
          auto v = make(PValue::kBool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'J':
          push_int(static_cast<int32_t>(rd(bytes(4), 4)));
          break;
        case 'K':
          push_int(byte());
          break;
        case 'M':
          push_int(static_cast<int64_t>(rd(bytes(2), 2)));
          break;
        case 0x8a: {  // LONG1
          uint8_t n = byte();
          check(n <= 8, "integer too large");
          const uint8_t* p = bytes(n);
          uint64_t v = n ? rd(p, n) : 0;
          if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const uint8_t* p = bytes(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
          auto v = make(PValue::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X':
          push_str(rd(bytes(4), 4));
          break;
        case 0x8c:
          push_str(byte());
          break;
        case 0x8d:
          push_str(rd(bytes(8), 8));
          break;
        case 'U':
        case 'C':
          push_str(byte());
          break;
        case 'T':
        case 'B':
          push_str(rd(bytes(4), 4));
          break;
        case 'c': {  // GLOBAL module\nname\n
          std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PPtr name = pop(), module = pop();
          check(name->kind == PValue::kStr && module->kind == PValue::kStr,
                "STACK_GLOBAL needs two strings");
          push_global(module->s + "." + name->s);
          break;
        }
        case 'q':
          memo_put(byte());
          break;
        case 'r':
          memo_put(static_cast<uint32_t>(rd(bytes(4), 4)));
          break;
        case 0x94:
          memo_put(static_cast<uint32_t>(memo_.size()));
          break;
        case 'h':
          memo_get(byte());
          break;
        case 'j':
          memo_get(static_cast<uint32_t>(rd(bytes(4), 4)));
          break;
        case 't':
          push(container(PValue::kTuple, pop_mark()));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {
          size_t k = op - 0x84;
          check(stack_.size() >= k + base(), "stack underflow");
          std::vector<PPtr> items(stack_.end() - k, stack_.end());
          stack_.resize(stack_.size() - k);
          push(container(PValue::kTuple, std::move(items)));
          break;
        }
        case 'l':
          push(container(PValue::kList, pop_mark()));
          break;
        case 'd': {
          auto items = pop_mark();
          check(items.size() % 2 == 0, "odd number of dict items");
          push(container(PValue::kDict, std::move(items)));
          break;
        }
        case 'a': {
          PPtr v = pop();
          extend(top(), PValue::kList, {v});
          break;
        }
        case 'e': {
          auto items = pop_mark();
          extend(top(), PValue::kList, std::move(items));
          break;
        }
        case 's': {
          PPtr v = pop(), k = pop();
          extend(top(), PValue::kDict, {k, v});
          break;
        }
        case 'u': {
          auto items = pop_mark();
          check(items.size() % 2 == 0, "odd number of SETITEMS values");
          extend(top(), PValue::kDict, std::move(items));
          break;
        }
        case 'Q':
          push(persistent(pop()));
          break;
        case 'R': {
          PPtr args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: only the OrderedDict `_metadata` state of state dicts
          PPtr state = pop();
          PPtr obj = top();
          check((obj->kind == PValue::kDict || obj->kind == PValue::kTensor) &&
                    (state->kind == PValue::kDict || state->kind == PValue::kNone ||
                     state->kind == PValue::kTuple),
                "BUILD on an object clipserve does not rebuild");
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          CS_THROW(kInvalidArgument, src_, ": pickle opcode ", hex, " at byte ", pos_ - 1,
                   " is not allowed (clipserve's unpickler only rebuilds tensors and dicts)");
        }
      }
    }
  }

 private:
  template <typename... A>
  void check(bool ok, A&&... msg) {
    if (!ok) CS_THROW(kInvalidArgument, src_, ": ", msg..., " (pickle byte ", pos_, ")");
  }
  uint8_t byte() { return *bytes(1); }
  const uint8_t* bytes(uint64_t n) {
    check(n <= d_.size() - pos_, "truncated pickle");
    const uint8_t* p = d_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string line() {
    size_t start = pos_;
    while (pos_ < d_.size() && d_[pos_] != '\n' && pos_ - start < 256) ++pos_;
    check(pos_ < d_.size() && d_[pos_] == '\n', "malformed GLOBAL");
    std::string s(reinterpret_cast<const char*>(d_.data() + start), pos_ - start);
    ++pos_;
    return s;
  }
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(PPtr v) {
    check(stack_.size() < (1u << 20), "pickle stack too deep");
    stack_.push_back(std::move(v));
  }
  PPtr pop() {
    check(stack_.size() > base(), "stack underflow");
    PPtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PPtr top() {
    check(stack_.size() > base(), "stack underflow");
    return stack_.back();
  }
  std::vector<PPtr> pop_mark() {
    check(!marks_.empty(), "missing MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PPtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push_int(int64_t x) {
    auto v = make(PValue::kInt);
    v->i = x;
    push(v);
  }
  void push_str(uint64_t n) {
    const uint8_t* p = bytes(n);
    auto v = make(PValue::kStr);
    v->s.assign(reinterpret_cast<const char*>(p), n);
    push(v);
  }
  void push_global(const std::string& name) {
    if (!global_allowed(name))
      CS_THROW(kInvalidArgument, src_, ": refusing pickle global '", name,
               "': clipserve's unpickler only allows tensor rebuilding (torch._utils) and "
               "OrderedDict; this file may be malicious or not a state dict");
    auto v = make(PValue::kGlobal);
    v->s = name;
    push(v);
  }
  void memo_put(uint32_t idx) {
    check(memo_.size() < (1u << 22), "pickle memo too large");
    memo_[idx] = top();
  }
  void memo_get(uint32_t idx) {
    auto it = memo_.find(idx);
    check(it != memo_.end(), "pickle memo index ", idx, " not defined");
    push(it->second);
  }
  PPtr container(PValue::Kind k, std::vector<PPtr> items) {
    auto v = make(k);
    int depth = 0;
    for (const auto& it : items) {
      depth = std::max(depth, it->depth);
      it->frozen = true;
    }
    v->depth = depth + 1;
    check(v->depth <= 64, "pickle nesting too deep");
    v->items = std::move(items);
    return v;
  }
  void extend(const PPtr& target, PValue::Kind k, std::vector<PPtr> items) {
    check(target->kind == k, k == PValue::kDict ? "SETITEM on a non-dict" : "APPEND on a non-list");
    check(!target->frozen, "modifying a container that is already inside another one");
    for (auto& it : items) {
      // Only containers not yet inside another can grow, so none can reach itself: no cycles.
      check(it.get() != target.get(), "self-referencing container");
      it->frozen = true;
      target->depth = std::max(target->depth, it->depth + 1);
      check(target->depth <= 64, "pickle nesting too deep");
      target->items.push_back(std::move(it));
    }
  }
  int64_t as_int(const PPtr& v, const char* what) {
    check(v->kind == PValue::kInt, what, " must be an integer");
    return v->i;
  }
  PPtr persistent(const PPtr& pid) {
    check(pid->kind == PValue::kTuple && pid->items.size() == 5 &&
              pid->items[0]->kind == PValue::kStr && pid->items[0]->s == "storage" &&
              pid->items[1]->kind == PValue::kGlobal && kStorageTypes.count(pid->items[1]->s) &&
              pid->items[2]->kind == PValue::kStr,
          "unsupported persistent id (expected ('storage', torch.<T>Storage, key, location, n))");
    auto v = make(PValue::kStorage);
    v->s = pid->items[1]->s;
    v->key = pid->items[2]->s;
    v->numel = as_int(pid->items[4], "storage size");
    check(v->numel >= 0, "negative storage size");
    return v;
  }
  std::vector<int64_t> int_tuple(const PPtr& t, const char* what) {
    check(t->kind == PValue::kTuple && t->items.size() <= 8, what, " must be a tuple of <= 8 ints");
    std::vector<int64_t> r;
    for (const auto& x : t->items) {
      int64_t v = as_int(x, what);
      check(v >= 0 && v <= (int64_t(1) << 40), what, " value out of range");
      r.push_back(v);
    }
    return r;
  }
  PPtr reduce(const PPtr& fn, const PPtr& args) {
    check(fn->kind == PValue::kGlobal, "REDUCE on a non-callable");
    check(args->kind == PValue::kTuple, "REDUCE arguments must be a tuple");
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      check(a.empty(), "OrderedDict() with arguments");
      return make(PValue::kDict);
    }
    if (fn->s == "torch._utils._rebuild_tensor_v2" || fn->s == "torch._utils._rebuild_tensor") {
      check(a.size() >= 4 && a.size() <= 7 && a[0]->kind == PValue::kStorage,
            "bad _rebuild_tensor arguments");
      auto t = make(PValue::kTensor);
      t->storage = a[0];
      t->offset = as_int(a[1], "storage offset");
      check(t->offset >= 0, "negative storage offset");
      t->size = int_tuple(a[2], "tensor size");
      t->stride = int_tuple(a[3], "tensor stride");
      check(t->size.size() == t->stride.size(), "size and stride differ in length");
      return t;
    }
    if (fn->s == "torch._utils._rebuild_parameter") {
      check(!a.empty() && a[0]->kind == PValue::kTensor, "bad _rebuild_parameter arguments");
      return a[0];
    }
    CS_THROW(kInvalidArgument, src_, ": refusing to call '", fn->s, "' from a pickle");
  }

  std::span<const uint8_t> d_;
  std::string src_;
  size_t pos_ = 0;
  std::vector<PPtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PPtr> memo_;
};

}  // namespace

PPtr unpickle(std::span<const uint8_t> data, const std::string& src) {
  return Unpickler(data, src).run();
}

}  // namespace clipserve::torch_pickle
