// Real models' chat templates against Python jinja2 (expected.json, written by
// tests/fixtures/chat_templates/render_fixtures.py), loading a model's template, the fallback
// template, and hostile templates that must throw instead of hanging or crashing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <map>

#include "runtime/chat/chat_template.h"
#include "runtime/core/error.h"
#include "runtime/core/read_file.h"

#include "tests/unit/chat/fixed_now.h"

namespace moe::chat {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests/fixtures/chat_templates";

TEST(ChatTemplateFixtures, EveryCaseMatchesJinja2) {
  const auto doc = nlohmann::ordered_json::parse(read_file(kFixtures / "expected.json"));
  std::map<std::string, std::unique_ptr<ChatTemplate>> templates;
  int passed = 0, total = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string name = c.at("template").get<std::string>();
    auto& t = templates[name];
    if (!t) {
      t = std::make_unique<ChatTemplate>(read_file(kFixtures / (name + ".jinja")));
      t->set_now(testing::fixed_now());
    }
    const std::string label =
        name + " / " + c.at("case").get<std::string>() + " / add_generation_prompt=" + c.at("add_generation_prompt").dump();
    SCOPED_TRACE(label);
    ++total;
    if (c.value("raises", false)) {
      try {
        const std::string out = t->render(c.at("context"));
        ADD_FAILURE() << "jinja2 raised but this rendered:\n" << out;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
        if (c.contains("raise_message")) {
          EXPECT_EQ(std::string(e.what()), c.at("raise_message").get<std::string>());
        }
        ++passed;
      }
      continue;
    }
    try {
      const std::string out = t->render(c.at("context"));
      EXPECT_EQ(out, c.at("expected").get<std::string>());
      passed += out == c.at("expected").get<std::string>();
    } catch (const Error& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
  EXPECT_EQ(passed, total);
  EXPECT_GE(total, 200);
  std::cout << passed << " of " << total << " fixture cases match jinja2\n";
}

TEST(ChatTemplateFixtures, AllSevenModelFamiliesAreCovered) {
  for (const char* name : {"mixtral-8x7b-instruct", "qwen2.5-instruct", "qwen3", "olmoe-instruct", "deepseek-v3.1",
                           "gpt-oss", "llama-3.1-instruct"})
    EXPECT_TRUE(std::filesystem::exists(kFixtures / (std::string(name) + ".jinja"))) << name;
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("moe_chat_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path_ / name) << text; }

 private:
  std::filesystem::path path_;
};

TEST(LoadChatTemplate, ReadsTokenizerConfigString) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "chat_template": "{{ bos_token }}hi"})");
  EXPECT_EQ(load_chat_template(dir.path()), "{{ bos_token }}hi");
}

TEST(LoadChatTemplate, TakesTheDefaultOfANamedList) {
  TempDir dir;
  dir.write("tokenizer_config.json",
            R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  EXPECT_EQ(load_chat_template(dir.path()), "D");
}

TEST(LoadChatTemplate, FallsBackToChatTemplateJinja) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  dir.write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_EQ(load_chat_template(dir.path()), "{% for m in messages %}{{ m.content }}{% endfor %}");
}

TEST(LoadChatTemplate, NoneWhenTheFolderHasNone) {
  TempDir dir;
  EXPECT_EQ(load_chat_template(dir.path()), std::nullopt);
  dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_EQ(load_chat_template(dir.path()), std::nullopt);
}

TEST(LoadChatTemplate, CorruptConfigThrows) {
  TempDir dir;
  dir.write("tokenizer_config.json", "{not json");
  try {
    load_chat_template(dir.path());
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  }
}

TEST(FallbackChatTemplate, RendersRolesAndGenerationPrompt) {
  const ChatTemplate t(fallback_chat_template());
  const auto context = nlohmann::json::parse(R"({
    "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
    "add_generation_prompt": true})");
  EXPECT_EQ(t.render(context), "<|system|>\nBe kind.\n<|user|>\nHi\n<|assistant|>\n");
  auto no_prompt = context;
  no_prompt["add_generation_prompt"] = false;
  EXPECT_EQ(t.render(no_prompt), "<|system|>\nBe kind.\n<|user|>\nHi\n");
}

TEST(ChatTemplate, StrftimeNowUsesTheClockUnlessFixed) {
  const ChatTemplate t("{{ strftime_now('%Y') }}");
  const std::string year = t.render(nlohmann::json::object());
  EXPECT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

TEST(ChatTemplate, ContextMustBeAnObject) {
  const ChatTemplate t("x");
  EXPECT_THROW(t.render(nlohmann::json::array()), Error);
}

// Hostile templates: each must throw moe::Error quickly, never hang, crash or exhaust memory.
void expect_refused(const std::string& source, const char* what) {
  SCOPED_TRACE(what);
  const auto start = std::chrono::steady_clock::now();
  try {
    const ChatTemplate t(source);
    const std::string out = t.render(nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "x"}]})"));
    ADD_FAILURE() << "rendered " << out.size() << " bytes";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(ChatTemplateLimits, HostileTemplatesThrow) {
  expect_refused("{% for i in range(10**9) %}x{% endfor %}", "range(10**9)");
  expect_refused("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}",
                 "a trillion iterations");
  expect_refused("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "unbounded macro recursion");
  expect_refused("{% macro f() %}{{ f() ~ f() }}{% endmacro %}{{ f() }}", "exponential macro recursion");
  expect_refused("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "deeply nested parentheses");
  expect_refused("{{ " + std::string(100000, '[') + " }}", "deeply nested lists");
  std::string nested_ifs;
  for (int i = 0; i < 5000; ++i) nested_ifs += "{% if true %}";
  expect_refused(nested_ifs, "deeply nested blocks");
  std::string not_chain = "{{ ";
  for (int i = 0; i < 100000; ++i) not_chain += "not ";
  expect_refused(not_chain + "x }}", "a long chain of not");
  expect_refused("{% set s = 'x' * 10000000 %}{{ s * 10 }}", "a huge string");
  expect_refused("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 "a string doubling 100 times");
  expect_refused("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "100 MB of output");
  expect_refused("{{ 2 ** 100 }}", "integer overflow");
  expect_refused("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                 "a list doubling");
}

}  // namespace
}  // namespace moe::chat
