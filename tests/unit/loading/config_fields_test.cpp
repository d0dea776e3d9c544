// Strict configs (issue 19, item 1): every field of each family's transformers configuration
// class (tests/fixtures/config_fields, written by tests/reference/make_config_field_fixtures.py
// from the classes' defaults) is either looked at by the parser, which implements it or refuses
// it by name, or listed below as changing no inference math. A field transformers adds that
// does neither fails here when the fixtures are regenerated.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"
#include "runtime/loading/model_config.h"

namespace moe::loading {
namespace {

const std::filesystem::path kFields = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures" / "config_fields";

// Fields that change nothing a forward pass computes, with why.
const std::set<std::string> kNoMath = {
    // Bookkeeping of transformers and the hub.
    "_name_or_path", "_transformers_version", "transformers_version", "architectures", "return_dict", "output_hidden_states",
    "output_attentions", "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "use_cache", "dtype",
    "torch_dtype",  // read: the stored dtype comes from the tensors anyway
    "tie_encoder_decoder", "pad_token_id", "initializer_range",
    // Training only: losses, dropout, noise, parallelism layouts.
    "attention_dropout", "output_router_logits", "router_aux_loss_coef", "router_jitter_noise", "router_z_loss_coef",
    "aux_loss_alpha", "seq_aux", "ep_size", "pretraining_tp",
    // Multi-token prediction layers after the last: inference never runs them (moe pack leaves them out).
    "num_nextn_predict_layers",
    // gpt-oss: the context its YaRN was trained at is rope_parameters' original_max_position_embeddings.
    "initial_context_length",
};

// Per family: gpt-oss's experts apply their clamped SwiGLU whatever hidden_act says
// (transformers' GptOssExperts never reads it).
bool changes_no_math(const std::string& family, const std::string& key) {
  return kNoMath.count(key) || (family == "gpt_oss" && key == "hidden_act");
}

class ConfigFields : public ::testing::TestWithParam<std::string> {};

TEST_P(ConfigFields, EveryFieldIsReadOrChangesNoMath) {
  const std::filesystem::path path = kFields / (GetParam() + ".json");
  const std::string text = read_file(path, "config fields");
  std::set<std::string> read;
  try {
    parse_model_config(text, path.string(), &read);
  } catch (const Error&) {
    // A class default the engine refuses (e.g. a field set to an unsupported value) still
    // counts as read for the fields looked at before the refusal; the rest are checked below.
  }
  const auto doc = nlohmann::json::parse(text);
  std::string unread;
  for (const auto& [key, value] : doc.items())
    if (!read.count(key) && !changes_no_math(GetParam(), key)) unread += " " + key;
  EXPECT_TRUE(unread.empty()) << GetParam() << ": fields neither read nor listed as changing no math:" << unread;
}

INSTANTIATE_TEST_SUITE_P(Families, ConfigFields,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3",
                                           "glm4_moe", "gpt_oss"));

}  // namespace
}  // namespace moe::loading
