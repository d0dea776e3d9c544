#include "runtime/core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "runtime/core/error.h"

namespace moe {

std::string shape_to_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

static Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  for (int64_t d : shape) MOE_CHECK(d >= 0, ErrorCode::kInvalidArgument, "negative dimension in {}", shape_to_string(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  const size_t bytes = (t.nbytes() + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  MOE_CHECK(p != nullptr, ErrorCode::kOutOfMemory, "cannot allocate {} bytes for a tensor", bytes);
  t.data_ = p;
  t.owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(void* data, DType dtype, Shape shape, std::shared_ptr<const void> owner) {
  Tensor t;
  t.data_ = data;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  t.owner_ = std::move(owner);
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  if (i < 0) i += r;
  MOE_ASSERT(i >= 0 && i < r);
  return shape_[static_cast<size_t>(i)];
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

std::span<const std::byte> Tensor::bytes() const {
  MOE_ASSERT(is_contiguous());
  return {static_cast<const std::byte*>(data_), nbytes()};
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  MOE_ASSERT(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0]);
  MOE_ASSERT(dtype_bits(dtype_) % 8 == 0 || strides_[0] % 2 == 0);
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + dtype_bytes(dtype_, static_cast<size_t>(begin * strides_[0]));
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  MOE_ASSERT(is_contiguous());
  MOE_CHECK(shape_numel(shape) == numel(), ErrorCode::kInvalidArgument, "cannot reshape {} to {}",
            shape_to_string(shape_), shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  return t;
}

Tensor Tensor::clone() const {
  MOE_ASSERT(is_contiguous());
  Tensor t = empty(dtype_, shape_);
  std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::to_f32() const {
  MOE_ASSERT(is_contiguous());
  Tensor t = empty(DType::kF32, shape_);
  float* out = t.data<float>();
  const int64_t n = numel();
  switch (dtype_) {
    case DType::kF32: std::memcpy(out, data_, nbytes()); break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(data<uint16_t>()[i]);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(data<uint16_t>()[i]);
      break;
    default: fail(ErrorCode::kUnsupported, "cannot convert {} to f32 without its scales", dtype_name(dtype_));
  }
  return t;
}

}  // namespace moe
