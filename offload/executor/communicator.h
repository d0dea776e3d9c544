#pragma once
// Moves activations between devices for expert parallelism: an all-to-all where device s
// sends send[s][d] to device d. The in-process implementation serves CPU virtual devices and
// tests; the NCCL one (with the CUDA backend) has the same shape.
#include <cstdint>
#include <vector>

namespace moe::offload {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int size() const = 0;
  // send[s][d] -> returns recv[d][s].
  virtual std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) = 0;
  // Bytes that crossed between different devices so far.
  virtual uint64_t bytes_moved() const = 0;
};

class InProcessCommunicator final : public Communicator {
 public:
  explicit InProcessCommunicator(int devices) : devices_(devices) {}
  int size() const override { return devices_; }
  std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) override;
  uint64_t bytes_moved() const override { return bytes_; }

 private:
  int devices_;
  uint64_t bytes_ = 0;
};

}  // namespace moe::offload
