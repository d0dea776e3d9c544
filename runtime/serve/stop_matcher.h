#pragma once
// Stop sequences over streamed text: text is held back while it could still be the start of a
// stop string, so a client never receives part of one; once one appears, the text before it is
// the completion's end.
#include <string>
#include <vector>

namespace moe::serve {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds generated text; returns what may be sent now. After a stop string, stopped() is true and
  // nothing more is returned.
  std::string push(const std::string& text);
  // The end of generation: whatever was held back.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace moe::serve
