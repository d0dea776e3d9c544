// The --prompts file: plain lines and JSONL lines with their options, and one clear error per
// malformed line, naming it.
#include <gtest/gtest.h>

#include "runtime/core/error.h"
#include "runtime/engine/prompt_file.h"

namespace moe::engine {
namespace {

TEST(PromptFile, ReadsPlainAndJsonLines) {
  const auto p = parse_prompts(
      "Once upon a time\n\n  \n{\"prompt\": \"dog\", \"max_tokens\": 7, \"temperature\": 0.5, \"top_p\": 0.9, \"seed\": 3, "
      "\"stop_token_ids\": [2, 5]}\r\n  {\"prompt\": \"\"}\n");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].line, 1);
  EXPECT_EQ(p[0].prompt, "Once upon a time");
  EXPECT_FALSE(p[0].max_new_tokens.has_value());
  EXPECT_EQ(p[1].line, 4);
  EXPECT_EQ(p[1].prompt, "dog");
  EXPECT_EQ(*p[1].max_new_tokens, 7);
  EXPECT_EQ(*p[1].temperature, 0.5);
  EXPECT_EQ(*p[1].top_p, 0.9);
  EXPECT_EQ(*p[1].seed, 3u);
  EXPECT_EQ(p[1].stop_tokens, (std::vector<int32_t>{2, 5}));
  EXPECT_EQ(p[2].line, 5);
  EXPECT_EQ(p[2].prompt, "");  // an empty prompt is the tokenizer's and scheduler's to refuse
}

TEST(PromptFile, NamesTheBadLine) {
  for (const char* bad : {"{\"prompt\": \"a\",", "{\"prompt\": 3}", "{\"prompt\": \"a\", \"max_tokens\": 1.5}",
                          "{\"prompt\": \"a\", \"max_tokens\": -2}", "{\"prompt\": \"a\", \"temperature\": \"hot\"}",
                          "{\"prompt\": \"a\", \"top_p\": 1.5}", "{\"prompt\": \"a\", \"stop_token_ids\": [-1]}",
                          "{\"prompt\": \"a\", \"stop_token_ids\": 3}", "{\"prompt\": \"a\", \"extra\": 1}",
                          "{\"max_tokens\": 3}", "{\"prompt\": \"a\", \"seed\": -1}"}) {
    try {
      parse_prompts(std::string("ok\n") + bad + "\n");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_prompts("\n \n"), Error);
  EXPECT_THROW(read_prompt_file("/nonexistent/prompts.txt"), Error);
}

}  // namespace
}  // namespace moe::engine
