#include "runtime/model/sequence_ids.h"

namespace moe::model {

void SequenceIds::assign(std::span<const StepRow> rows, std::vector<int64_t>& ids, std::vector<int64_t>* ended) {
  ++step_;
  ids.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto [it, fresh] = seen_.try_emplace(rows[i].sequence, Seen{next_id_, step_});
    if (!fresh && rows[i].position == 0) {
      if (ended) ended->push_back(it->second.id);
      it->second.id = next_id_;
      fresh = true;
    }
    if (fresh) ++next_id_;
    it->second.step = step_;
    ids[i] = it->second.id;
  }
  if (forget_after_ > 0 && step_ % forget_after_ == 0)
    std::erase_if(seen_, [&](const auto& entry) {
      const bool stale = entry.second.step + forget_after_ < step_;
      if (stale && ended) ended->push_back(entry.second.id);
      return stale;
    });
}

}  // namespace moe::model
