#include "runtime/engine/scheduler.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace moe::engine {

struct Scheduler::Sequence {
  SequenceId id = 0;
  std::vector<int32_t> tokens;  // the prompt, then what it generated
  int64_t prompt_tokens = 0;
  model::GenerationOptions options;
  model::Sampler sampler;
  model::KvCache cache;
  bool finished = false, cancel = false;
  SequenceStats stats;
  Clock::time_point submitted;
  bool started = false, first_token = false;

  Sequence(SequenceId id, std::vector<int32_t> prompt, const model::GenerationOptions& options,
           std::shared_ptr<model::KvBlockPool> pool)
      : id(id),
        tokens(std::move(prompt)),
        prompt_tokens(int64_t(tokens.size())),
        options(options),
        sampler(options.sampling),
        cache(std::move(pool), int64_t(tokens.size()) + std::max(options.max_new_tokens, 1)),
        submitted(Clock::now()) {
    stats.prompt_tokens = prompt_tokens;
  }
  int64_t generated() const { return int64_t(tokens.size()) - prompt_tokens; }
  int64_t pending() const { return int64_t(tokens.size()) - cache.length(); }  // tokens to run before the next sample
};

namespace {
double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

Scheduler::Scheduler(model::Transformer& model, std::shared_ptr<model::KvBlockPool> pool, SchedulerOptions options)
    : model_(model), pool_(std::move(pool)), options_(options) {
  MOE_CHECK(pool_ != nullptr, ErrorCode::kInvalidArgument, "the scheduler needs a KV pool");
  const loading::ModelConfig& c = model.config();
  MOE_CHECK(pool_->num_layers() == c.num_layers && pool_->row_size() == int64_t{c.kv_cache_heads()} * c.head_dim,
            ErrorCode::kInvalidArgument, "the KV pool is not shaped for this model");
  MOE_CHECK(options_.max_batch >= 1, ErrorCode::kInvalidArgument, "--max-batch must be at least 1");
  MOE_CHECK(options_.max_step_tokens >= 1, ErrorCode::kInvalidArgument, "the tokens per step must be at least 1");
}

Scheduler::~Scheduler() = default;

SequenceId Scheduler::submit(std::vector<int32_t> prompt, const model::GenerationOptions& options) {
  const loading::ModelConfig& c = model_.config();
  MOE_CHECK(!prompt.empty(), ErrorCode::kInvalidArgument, "the prompt encodes to no tokens");
  MOE_CHECK(options.max_new_tokens >= 0, ErrorCode::kInvalidArgument, "the number of new tokens cannot be negative");
  for (const int32_t t : prompt)
    MOE_CHECK(t >= 0 && t < c.vocab_size, ErrorCode::kInvalidArgument, "token id {} is outside the vocabulary of {}", t,
              c.vocab_size);
  const int64_t total = int64_t(prompt.size()) + std::max(options.max_new_tokens, 1);
  MOE_CHECK(total <= model_.max_positions(), ErrorCode::kInvalidArgument,
            "{} prompt tokens and {} new ones pass the model's context of {} positions", prompt.size(), options.max_new_tokens,
            model_.max_positions());
  const int64_t blocks = (total + pool_->block_tokens() - 1) / pool_->block_tokens();
  MOE_CHECK(blocks <= pool_->num_blocks(), ErrorCode::kOutOfMemory,
            "a sequence of {} prompt and {} new tokens needs {} KV blocks of {} tokens; the KV budget holds {}", prompt.size(),
            options.max_new_tokens, blocks, pool_->block_tokens(), pool_->num_blocks());
  const SequenceId id = next_id_++;
  sequences_.push_back(std::make_unique<Sequence>(id, std::move(prompt), options, pool_));
  waiting_.push_back(sequences_.back().get());
  if (agreement_) agreement_->submitted(id, sequences_.back()->tokens, options);
  return id;
}

Scheduler::Sequence& Scheduler::find(SequenceId id) const {
  for (const auto& s : sequences_)
    if (s->id == id) return *s;
  fail(ErrorCode::kNotFound, "no sequence {}", id);
}

bool Scheduler::cancel(SequenceId id) {
  if (agreement_) agreement_->cancelled(id);
  for (const auto& s : sequences_)
    if (s->id == id && !s->finished && !s->cancel) {
      s->cancel = true;
      cancelled_.push_back(s.get());
      return true;
    }
  return false;
}

const std::vector<int32_t>& Scheduler::tokens(SequenceId id) const { return find(id).tokens; }

SequenceStats Scheduler::sequence_stats(SequenceId id) const {
  const Sequence& s = find(id);
  SequenceStats stats = s.stats;
  stats.generated_tokens = s.generated();
  return stats;
}

void Scheduler::forget(SequenceId id) {
  const auto it = std::find_if(sequences_.begin(), sequences_.end(), [&](const auto& s) { return s->id == id; });
  MOE_CHECK(it != sequences_.end(), ErrorCode::kNotFound, "no sequence {}", id);
  MOE_CHECK((*it)->finished, ErrorCode::kInvalidArgument, "sequence {} has not finished", id);
  sequences_.erase(it);
}

void Scheduler::finish(Sequence& s, std::string reason, std::vector<SequenceEvent>& events) {
  s.finished = true;
  s.cache.clear();  // its blocks back to the pool
  s.stats.total_seconds = seconds_between(s.submitted, Clock::now());
  std::erase(running_, &s);
  std::erase(waiting_, &s);
  if (!events.empty() && events.back().id == s.id && !events.back().finished) {
    events.back().finished = true;
    events.back().finish_reason = std::move(reason);
  } else {
    events.push_back({s.id, std::nullopt, true, std::move(reason)});
  }
}

void Scheduler::preempt(Sequence& s) {
  // Its blocks go back; it waits again in arrival order and is recomputed when readmitted.
  s.stats.recomputed_tokens += s.cache.length();
  s.cache.clear();
  ++s.stats.preemptions;
  ++stats_.preemptions;
  std::erase(running_, &s);
  const auto at = std::find_if(waiting_.begin(), waiting_.end(), [&](const Sequence* w) { return w->id > s.id; });
  waiting_.insert(at, &s);
}

double Scheduler::kv_bytes_per_token() const {
  return stats_.peak_kv_tokens > 0 ? double(stats_.peak_kv_blocks) * double(pool_->block_bytes()) / double(stats_.peak_kv_tokens)
                                   : 0;
}

void Scheduler::note_kv_use(int64_t planned_tokens) {
  // The fullest moment: the most tokens held, and the blocks holding them.
  int64_t tokens = planned_tokens;
  for (const Sequence* s : running_) tokens += s->cache.length();
  if (tokens <= stats_.peak_kv_tokens) return;
  stats_.peak_kv_tokens = tokens;
  stats_.peak_kv_blocks = pool_->used_blocks();
}

std::vector<SequenceEvent> Scheduler::step() {
  if (agreement_) agreement_->stepping();
  std::vector<SequenceEvent> events;
  for (Sequence* s : cancelled_)
    if (!s->finished) finish(*s, "cancelled", events);
  cancelled_.clear();

  // Running sequences first, oldest first: each its next chunk (a decode token, or a prefill
  // chunk in what the budget leaves), taking blocks from the youngest when the pool is short.
  struct Planned {
    Sequence* sequence;
    int64_t tokens;
  };
  std::vector<Planned> plan;
  int64_t budget = options_.max_step_tokens;
  const int64_t preemptions_before = stats_.preemptions;
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& s = *running_[i];
    const int64_t chunk = std::min(s.pending(), budget);
    while (s.cache.blocks_needed(chunk) > pool_->free_blocks() && running_.back() != &s) preempt(*running_.back());
    if (s.cache.blocks_needed(chunk) > pool_->free_blocks()) {  // the youngest itself: it waits
      preempt(s);
      break;
    }
    s.cache.reserve_more(chunk);
    plan.push_back({&s, chunk});
    budget -= chunk;
    ++i;
  }
  // Then waiting sequences in arrival order, while the batch, the budget and the free blocks allow.
  // None while this step preempts: the pool is short, and a preempted sequence must not return at once.
  while (stats_.preemptions == preemptions_before && !waiting_.empty() && budget > 0 &&
         int(running_.size()) < options_.max_batch) {
    Sequence& s = *waiting_.front();
    const int64_t chunk = std::min(s.pending(), budget);
    if (s.cache.blocks_needed(chunk) > pool_->free_blocks()) break;  // first come, first served: no overtaking
    waiting_.pop_front();
    s.cache.reserve_more(chunk);
    running_.push_back(&s);
    if (!s.started) {
      s.started = true;
      s.stats.queue_seconds = seconds_between(s.submitted, Clock::now());
    }
    plan.push_back({&s, chunk});
    budget -= chunk;
  }
  if (plan.empty()) return events;

  std::vector<model::SequenceStep> batch;
  for (const Planned& p : plan) {
    const Sequence& s = *p.sequence;
    const bool samples = p.tokens == s.pending();  // the chunk reaches the sequence's end: sample after it
    batch.push_back({std::span(s.tokens).subspan(size_t(s.cache.length()), size_t(p.tokens)), &p.sequence->cache,
                     samples ? model::LogitsWanted::kLast : model::LogitsWanted::kNone});
  }
  note_kv_use(options_.max_step_tokens - budget);
  const std::vector<float> logits = model_.forward(batch);
  ++stats_.steps;
  stats_.max_running = std::max(stats_.max_running, int(running_.size()));

  // Every sampled token first (in plan order), agreed across ranks, then what they do.
  const int64_t vocab = model_.config().vocab_size;
  std::vector<int32_t> sampled;
  int64_t row = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    Sequence& s = *plan[i].sequence;
    if (batch[i].logits == model::LogitsWanted::kNone) continue;
    const std::span<const float> own(logits.data() + row * vocab, size_t(vocab));
    ++row;
    if (s.options.max_new_tokens > 0) sampled.push_back(s.sampler.sample(own));
  }
  if (agreement_) agreement_->agree(sampled);
  size_t next = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    Sequence& s = *plan[i].sequence;
    stats_.step_tokens += plan[i].tokens;
    if (batch[i].logits == model::LogitsWanted::kNone) continue;
    if (s.options.max_new_tokens == 0) {
      finish(s, "length", events);
      continue;
    }
    const int32_t token = sampled[next++];
    s.tokens.push_back(token);
    ++stats_.generated_tokens;
    if (!s.first_token) {
      s.first_token = true;
      s.stats.first_token_seconds = seconds_between(s.submitted, Clock::now());
    }
    events.push_back({s.id, token, false, {}});
    const auto& stops = s.options.stop_tokens;
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
      finish(s, "stop_token", events);
    } else if (s.generated() >= s.options.max_new_tokens) {
      finish(s, "length", events);
    }
  }
  return events;
}

}  // namespace moe::engine
