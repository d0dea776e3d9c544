#pragma once
// A Tensor is a typed, shaped, strided view over memory that it either owns (64-byte aligned,
// freed with the last copy) or borrows from a keep-alive owner (an mmapped file, a pool slot).
// Copies share the memory; clone() copies the bytes.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"

namespace moe {

using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Owned, contiguous, uninitialised.
  static Tensor empty(DType dtype, Shape shape);
  // Owned, contiguous, zero-filled.
  static Tensor zeros(DType dtype, Shape shape);
  // Borrowed contiguous memory; `owner` keeps it alive (may be null for caller-managed memory).
  static Tensor view(void* data, DType dtype, Shape shape, std::shared_ptr<const void> owner);
  static Tensor view(const void* data, DType dtype, Shape shape, std::shared_ptr<const void> owner) {
    return view(const_cast<void*>(data), dtype, std::move(shape), std::move(owner));
  }

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, static_cast<size_t>(numel())); }
  bool is_contiguous() const;

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }
  std::span<const std::byte> bytes() const;  // contiguous tensors only

  // Rows [begin, end) of the first dimension: a view sharing memory.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Same memory, another shape with the same element count (contiguous tensors only).
  Tensor reshape(Shape shape) const;
  // An owned, contiguous copy.
  Tensor clone() const;
  // An owned, contiguous f32 copy, converting bf16/f16.
  Tensor to_f32() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Shape shape_;
  Shape strides_;
  std::shared_ptr<const void> owner_;
};

}  // namespace moe
