#include "offload/executor/process_group.h"

#include <exception>

namespace moe::offload {
namespace {
std::unique_ptr<ProcessGroup>& installed() {
  static std::unique_ptr<ProcessGroup> group;
  return group;
}
}  // namespace

ProcessGroup* process_group() { return installed().get(); }
void set_process_group(std::unique_ptr<ProcessGroup> group) { installed() = std::move(group); }

void on_every_rank(const char* what, const std::function<void()>& step) {
  ProcessGroup* group = process_group();
  if (!group) return step();
  std::string mine;
  ErrorCode code = ErrorCode::kInternal;
  try {
    step();
  } catch (const Error& e) {
    mine = e.what();
    code = e.code();
  } catch (const std::bad_alloc&) {
    mine = "out of memory";
    code = ErrorCode::kOutOfMemory;
  } catch (const std::exception& e) {
    mine = e.what();
  }
  const std::vector<std::string> outcomes = group->gather_outcomes(mine, 10 * group->timeout());
  for (size_t r = 0; r < outcomes.size(); ++r)
    if (!outcomes[r].empty())
      throw AgreedError(int(r) == group->rank() && !mine.empty() ? code : ErrorCode::kIo,
                        fmt::format("rank {} could not {}: {}", r, what, outcomes[r]));
}

}  // namespace moe::offload
