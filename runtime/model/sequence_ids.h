#pragma once
// Ids for the sequences a run's steps interleave, from each row's cache and position
// (Transformer::step_rows): a cache keeps its id from step to step; a row at position 0 starts a
// new sequence in it (a new request in a reused cache). What learns a sequence's own history
// keys it by these ids.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/model/transformer.h"

namespace moe::model {

class SequenceIds {
 public:
  // `forget_after`: steps after which a cache not seen again is dropped (its request ended); 0 keeps all.
  explicit SequenceIds(int64_t forget_after = 0) : forget_after_(forget_after) {}
  // Writes each row's sequence id to ids; appends to `ended` (when given) the ids no later row
  // will have: a cache started again, or one unseen for `forget_after` steps.
  void assign(std::span<const StepRow> rows, std::vector<int64_t>& ids, std::vector<int64_t>* ended = nullptr);

 private:
  struct Seen {
    int64_t id = 0, step = 0;  // its sequence id, and the last step it ran in
  };
  int64_t forget_after_;
  std::unordered_map<const KvCache*, Seen> seen_;
  int64_t next_id_ = 0, step_ = 0;
};

}  // namespace moe::model
