// The Jinja language on small templates. Every expected string below was produced by Python's
// jinja2 3.1.6 rendering the same template in transformers' chat-template environment
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson,
// strftime_now fixed at 2025-03-14 09:26:53: the environment of
// tests/fixtures/chat_templates/render_fixtures.py); none of them came from the code under test.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/chat/chat_template.h"
#include "runtime/chat/jinja_eval.h"
#include "runtime/chat/jinja_parser.h"
#include "runtime/core/error.h"

#include "tests/unit/chat/fixed_now.h"

namespace moe::chat {
namespace {

struct Case {
  const char* name;
  const char* source;
  const char* context;
  const char* expected;
};

const Case kCases[] = {
    {"ws_trim_blocks", R"~({% if true %}
yes
{% endif %}
end)~",
     R"~({})~",
     R"~(yes
end)~"},
    {"ws_lstrip", R"~(a
    {% if true %}
    b
    {% endif %}
c)~",
     R"~({})~",
     R"~(a
    b
c)~"},
    {"ws_minus", R"~(a   {{- 'b' -}}   c
  {%- if true -%}  d  {%- endif -%}  e)~",
     R"~({})~",
     R"~(abcde)~"},
    {"ws_plus", R"~(a
  {%+ if true %}b{% endif +%}
c)~",
     R"~({})~",
     R"~(a
  b
c)~"},
    {"ws_comment", R"~(x
  {# note #}
y {#- strip -#}  z)~",
     R"~({})~",
     R"~(x
yz)~"},
    {"ws_var_no_lstrip", R"~(  {{ 'v' }}
)~",
     R"~({})~",
     R"~(  v)~"},
    {"trailing_newline", R"~(line
)~",
     R"~({})~",
     R"~(line)~"},
    {"literals", R"~({{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ 'a' 'b' }} {{ true }} {{ none }} {{ [1, 'x', none] }} {{ {'k': 'v', 'n': 1} }} {{ (1,) }} {{ (1, 2) }})~",
     R"~({})~",
     R"~(1 1.5 2.0 ab True None [1, 'x', None] {'k': 'v', 'n': 1} (1,) (1, 2))~"},
    {"arith", R"~({{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 1 + 2 * 3 }} {{ -2 ** 2 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 10 / 4 }})~",
     R"~({})~",
     R"~(3 -4 1 2 3.5 1024 64 7 4 0.30000000000000004 1e+20 2.5)~"},
    {"concat", R"~({{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ x ~ 'y' }})~",
     R"~({})~",
     R"~(a1NoneTrue ababab [1, 2] y)~"},
    {"compare", R"~({{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ [1,2] == [1,2] }} {{ 'b' > 'a' }} {{ true == 1 }})~",
     R"~({})~",
     R"~(True True True True True True True True)~"},
    {"logic", R"~({{ 0 or 'x' }} {{ 'a' and 'b' }} {{ not 0 }} {{ none or [] }} {{ 'y' if 1 > 2 else 'n' }} [{{ 'y' if false }}])~",
     R"~({})~",
     R"~(x b True [] n [])~"},
    {"ternary_chain", R"~({{ 'a' if x == 1 else 'b' if x == 2 else 'c' }})~",
     R"~({"x": 2})~",
     R"~(b)~"},
    {"access", R"~({{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ l[0] }} {{ l[-1] }} {{ l.1 }} {{ l[5] }}|)~",
     R"~({"m": {"role": "user", "content": "hi"}, "l": [1, 2, 3]})~",
     R"~(user hi |1 3 2 |)~"},
    {"slices", R"~({{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ s[1:3] }} {{ s[::-1] }} {{ l[-2:] }} {{ l[10:] }})~",
     R"~({"l": [1, 2, 3, 4], "s": "héllo"})~",
     R"~([2, 3, 4] [1, 2, 3] [4, 3, 2, 1] [1, 3] él olléh [3, 4] [])~"},
    {"loop_vars", R"~({% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }};{% endfor %})~",
     R"~({})~",
     R"~(1032TrueFalse3a;2121FalseFalse3b;3210FalseTrue3c;)~"},
    {"loop_prev_next", R"~({% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}|{% endfor %})~",
     R"~({})~",
     R"~(-2|1-3|2-|)~"},
    {"loop_cycle", R"~({% for x in range(4) %}{{ loop.cycle('o', 'e') }}{% endfor %})~",
     R"~({})~",
     R"~(oeoe)~"},
    {"loop_unpack", R"~({% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %})~",
     R"~({"d": {"b": 1, "a": 2}})~",
     R"~(b=1,a=2,|b1a2|ba)~"},
    {"loop_else", R"~({% for x in [] %}x{% else %}empty{% endfor %}|{% for x in none_list %}{% else %}undef{% endfor %})~",
     R"~({})~",
     R"~(empty|undef)~"},
    {"loop_if", R"~({% for x in range(10) if x is odd %}{{ x }}{{ '/' ~ loop.length if loop.last }}{% endfor %})~",
     R"~({})~",
     R"~(13579/5)~"},
    {"loop_break_continue", R"~({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})~",
     R"~({})~",
     R"~(0134)~"},
    {"loop_scope", R"~({% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }})~",
     R"~({})~",
     R"~(23|1)~"},
    {"loop_nested", R"~({% for a in [1,2] %}{% for b in ['x','y'] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %})~",
     R"~({})~",
     R"~(11x 21y 1|12x 22y 2|)~"},
    {"loop_string", R"~({% for c in 'hé!' %}[{{ c }}]{% endfor %})~",
     R"~({})~",
     R"~([h][é][!])~"},
    {"set_tuple", R"~({% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 3, 4 %}{{ t }})~",
     R"~({})~",
     R"~(12(3, 4))~"},
    {"namespace", R"~({% set ns = namespace(n=0, found=false) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }})~",
     R"~({})~",
     R"~(6 True)~"},
    {"set_block", R"~({% set body %}
  Hello {{ name }}!
{% endset %}[{{ body }}]{{ body | length }})~",
     R"~({"name": "Ann"})~",
     R"~([  Hello Ann!
]13)~"},
    {"macro", R"~({% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }})~",
     R"~({})~",
     R"~(Hi A! Hi B? Hi C.)~"},
    {"macro_recursive", R"~({% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}{{ fact(5) }})~",
     R"~({})~",
     R"~(5*4*3*2*1)~"},
    {"macro_outer_var", R"~({% macro show() %}{{ who }}{% endmacro %}{{ show() }})~",
     R"~({"who": "ctx"})~",
     R"~(ctx)~"},
    {"call_block", R"~({% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ 1 + 1 }}{% endcall %})~",
     R"~({})~",
     R"~(<b>inner 2</b>)~"},
    {"call_block_args", R"~({% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}<{{ x }}>{% endcall %})~",
     R"~({})~",
     R"~(<1><2>)~"},
    {"f_trim", R"~([{{ '  a b 
' | trim }}][{{ 'xxaxx' | trim('x') }}])~",
     R"~({})~",
     R"~([a b][a])~"},
    {"f_tojson", R"~({{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ 'é"
' | tojson }}|{{ [] | tojson(indent=2) }}|{{ 1.0 | tojson }}|{{ none | tojson }})~",
     R"~({"d": {"a": [1, 2.5, true, null], "b": {"c": "ü"}, "e": {}}})~",
     R"~({"a": [1, 2.5, true, null], "b": {"c": "ü"}, "e": {}}|{
  "a": [
    1,
    2.5,
    true,
    null
  ],
  "b": {
    "c": "ü"
  },
  "e": {}
}|"é\"\n"|[]|1.0|null)~"},
    {"f_case", R"~({{ 'hello wORLD' | upper }} {{ 'HeLLo' | lower }} {{ 'hello wORLD-x (y' | title }} {{ 'hello World' | capitalize }})~",
     R"~({})~",
     R"~(HELLO WORLD hello Hello World-X (Y Hello world)~"},
    {"f_default", R"~({{ missing | default('d') }} {{ missing | d('e') }} {{ '' | default('f') }} {{ '' | default('g', true) }} {{ none | default('h') }})~",
     R"~({})~",
     R"~(d e  g None)~"},
    {"f_length", R"~({{ [1,2] | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ missing | length }})~",
     R"~({})~",
     R"~(2 5 1 0)~"},
    {"f_join_first_last", R"~({{ [1, 'a', none] | join(', ') }} {{ 'abc' | join('-') }} {{ [3,4] | first }} {{ [3,4] | last }} {{ 'xyz' | first }} {{ users | join(', ', attribute='name') }})~",
     R"~({"users": [{"name": "a"}, {"name": "b"}]})~",
     R"~(1, a, None a-b-c 3 4 x a, b)~"},
    {"f_list_string", R"~({{ 'ab' | list }} {{ 12 | string }} {{ (1, 2) | list }} {{ {'x': 1} | list }})~",
     R"~({})~",
     R"~(['a', 'b'] 12 [1, 2] ['x'])~"},
    {"f_replace", R"~({{ 'aXbXc' | replace('X', '-') }} {{ 'aaa' | replace('a', 'b', 2) }})~",
     R"~({})~",
     R"~(a-b-c bba)~"},
    {"f_numbers", R"~({{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ -3 | abs }} {{ 5 | float }})~",
     R"~({})~",
     R"~(2.57 2.0 4.0 3.0 7 42 4 0 3 2.5 3 5.0)~"},
    {"f_map_select", R"~({{ users | map(attribute='name') | join(',') }} {{ users | selectattr('admin') | map(attribute='name') | list }} {{ users | rejectattr('admin') | map(attribute='name') | list }} {{ [1,2,3,4] | select('even') | list }} {{ [1,2,3,4] | reject('odd') | list }} {{ users | selectattr('name', 'equalto', 'b') | list | length }} {{ ['a','b'] | map('upper') | list }})~",
     R"~({"users": [{"name": "a", "admin": true}, {"name": "b", "admin": false}]})~",
     R"~(a,b ['a'] ['b'] [2, 4] [2, 4] 1 ['A', 'B'])~"},
    {"f_unique_sort_reverse", R"~({{ ['b', 'A', 'a', 'c', 'B'] | unique | list }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ users | sort(attribute='age') | map(attribute='n') | join }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }})~",
     R"~({"users": [{"n": "x", "age": 30}, {"n": "y", "age": 20}]})~",
     R"~(['b', 'A', 'c'] [1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] yx [3, 2, 1] cba)~"},
    {"f_indent", R"~([{{ 'a
b

c' | indent }}][{{ 'a
b' | indent(2, true) }}][{{ 'a

b' | indent(width='>', blank=true) }}])~",
     R"~({})~",
     R"~([a
    b

    c][  a
  b][a
>
>b])~"},
    {"f_misc", R"~({{ 'a b  c' | wordcount }} {{ '<x>' | safe }} {{ [1, 2, 3] | sum }} {{ '<&>' | e }})~",
     R"~({})~",
     R"~(3 <x> 6 &lt;&amp;&gt;)~"},
    {"tests_types", R"~({{ x is defined }} {{ y is undefined }} {{ n is none }} {{ 's' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ 1.0 is integer }} {{ {} is mapping }} {{ [] is iterable }} {{ 's' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ true is boolean }} {{ true is true }} {{ 0 is false }} {{ false is false }})~",
     R"~({"x": 1, "n": null})~",
     R"~(True True True True True True True False True True True False True True True False True)~"},
    {"tests_values", R"~({{ 3 is odd }} {{ 4 is even }} {{ 2 is in [1, 2] }} {{ 'a' is equalto 'a' }} {{ 1 is eq 2 }} {{ x is not none }} {{ 9 is divisibleby 3 }} {{ 'abc' is lower }} {{ none is sameas none }} {{ 3 is gt 2 }} {{ 3 is lt(2) }})~",
     R"~({"x": 0})~",
     R"~(True True True True False True True True True True False)~"},
    {"str_methods", R"~({{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  x'.lstrip() }}|{{ 'x  
'.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aba'.replace('a', 'x') }}|{{ 'hi'.upper() }}|{{ 'HI'.lower() }}|{{ 'hello world'.title() }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.rfind('b') }}|{{ 'abcb'.count('b') }}|{{ '-'.join(['a', 'b']) }}|{{ 'x</think>y'.split('</think>')[-1] }}|{{ 'a
b'.splitlines() }}|{{ 'a</think>b</think>c'.split('</think>', 1) }})~",
     R"~({})~",
     R"~(x|hi|x|x|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|True|True|xbx|HI|hi|Hello World|1|3|2|a-b|y|['a', 'b']|['a', 'b</think>c'])~"},
    {"dict_methods", R"~({{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }})~",
     R"~({"d": {"a": 1, "b": [2]}})~",
     R"~(1 None 5 ['a', 'b'] [1, [2]] [('a', 1), ('b', [2])])~"},
    {"dict_items_key", R"~({{ d['items'] }} {{ d.items is defined }})~",
     R"~({"d": {"items": "x"}})~",
     R"~(x True)~"},
    {"range", R"~({{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }})~",
     R"~({})~",
     R"~([0, 1, 2] [1, 2, 3] [10, 7, 4, 1])~"},
    {"undefined", R"~([{{ u }}][{{ u | upper }}][{{ u is defined }}][{{ u or 'x' }}][{% for x in u %}{% endfor %}][{{ 'a' in u }}][{{ u ~ 'z' }}][{{ d.nope }}][{{ d.nope is defined }}])~",
     R"~({"d": {}})~",
     R"~([][][False][x][][False][z][][False])~"},
    {"str_of_values", R"~({{ [1.5, 'a', "it's", true, none, {'k': [1]}] }} {{ (1, 'b') }} {{ 1e-5 }} {{ 123456789012345678.0 }} {{ -0.0 }})~",
     R"~({})~",
     R"~([1.5, 'a', "it's", True, None, {'k': [1]}] (1, 'b') 1e-05 1.2345678901234568e+17 -0.0)~"},
    {"bools_ints", R"~({{ true + 1 }} {{ 3 * true }} {{ [1] * 2 }} {{ 2 * 'ab' }})~",
     R"~({})~",
     R"~(2 3 [1, 1] abab)~"},
    {"strftime", R"~({{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }} {{ strftime_now('%B %d, %Y %H:%M:%S') }})~",
     R"~({})~",
     R"~(2025-03-14 14 Mar 2025 March 14, 2025 09:26:53)~"},
    {"raw_filter_precedence", R"~({{ -1 | abs }} {{ 'a' ~ 'b' | upper }} {{ (1 + 2) | string }} {{ not true is false }})~",
     R"~({})~",
     R"~(1 aB 3 True)~"},
};

std::string render(const char* source, const char* context) {
  ChatTemplate t(source);
  t.set_now(testing::fixed_now());
  return t.render(nlohmann::ordered_json::parse(context));
}

TEST(JinjaLanguage, MatchesJinja2) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    try {
      EXPECT_EQ(render(c.source, c.context), c.expected) << c.source;
    } catch (const Error& e) {
      ADD_FAILURE() << c.name << " threw: " << e.what();
    }
  }
}

struct ErrorCase {
  const char* name;
  const char* source;
  const char* context;
};

// Templates jinja2 raises on (its exception in the comment): the renderer throws moe::Error.
const ErrorCase kErrors[] = {
    {"raise", R"~({{ raise_exception('Bad role: ' ~ r) }})~", R"~({"r": "x"})~"},  // jinja2: RaisedByTemplate: Bad role: x
    {"unknown_filter_runtime", R"~({{ 1 | nosuchfilter }})~", R"~({})~"},  // jinja2: TemplateAssertionError: No filter named 'nosuchfilter'.
    {"call_non_callable", R"~({{ x() }})~", R"~({"x": 1})~"},  // jinja2: TypeError: 'int' object is not callable
    {"undefined_attr", R"~({{ u.attr }})~", R"~({})~"},  // jinja2: UndefinedError: 'u' is undefined
    {"str_plus_int", R"~({{ 'a' + 1 }})~", R"~({})~"},  // jinja2: TypeError: can only concatenate str (not "int") to str
    {"list_append", R"~({% set l = [] %}{{ l.append(1) }})~", R"~({})~"},  // jinja2: SecurityError: access to attribute 'append' of 'list' object is unsafe.
    {"ns_assign_non_ns", R"~({% set d = {} %}{% set d.x = 1 %})~", R"~({})~"},  // jinja2: TemplateRuntimeError: cannot assign attribute on non-namespace object
    {"div_zero", R"~({{ 1 / 0 }})~", R"~({})~"},  // jinja2: ZeroDivisionError: division by zero
};

TEST(JinjaLanguage, RaisesWhereJinja2Raises) {
  for (const ErrorCase& c : kErrors) {
    SCOPED_TRACE(c.name);
    try {
      const std::string out = render(c.source, c.context);
      ADD_FAILURE() << c.name << " rendered " << out;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(JinjaLanguage, RaiseExceptionCarriesTheTemplatesMessage) {
  try {
    render("{{ raise_exception('Bad role: ' ~ r) }}", R"({"r": "x"})");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "Bad role: x");
  }
}

// transformers' AssistantTracker extension: {% generation %} renders its body in place.
TEST(JinjaLanguage, GenerationTagRendersItsBody) {
  EXPECT_EQ(render("a{% generation %}b{{ 1 }}{% endgeneration %}c", "{}"), "ab1c");
}

std::string syntax_error_of(const std::string& source) {
  try {
    ChatTemplate t(source);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no syntax error for " << source;
  return "";
}

TEST(JinjaLanguage, SyntaxErrorsNameTheLine) {
  EXPECT_NE(syntax_error_of("line one\n{% if x %}\nunclosed").find("line 2"), std::string::npos);
  EXPECT_NE(syntax_error_of("a\nb\n{{ 1 + }}").find("line 3"), std::string::npos);
  EXPECT_NE(syntax_error_of("{% for x in y %}\n{% endif %}").find("line"), std::string::npos);
  EXPECT_NE(syntax_error_of("\n\n\n\n{{ 'unterminated }}").find("line 5"), std::string::npos);
  EXPECT_NE(syntax_error_of("{# never closed").find("line 1"), std::string::npos);
  EXPECT_NE(syntax_error_of("x\n{% break %}").find("line 2"), std::string::npos);
  EXPECT_NE(syntax_error_of("{% frobnicate %}").find("frobnicate"), std::string::npos);
  EXPECT_NE(syntax_error_of("{{ a $ b }}").find("line 1"), std::string::npos);
  EXPECT_NE(syntax_error_of("{{ x ").find("line 1"), std::string::npos);
}

}  // namespace
}  // namespace moe::chat

namespace moe::chat::jinja {
namespace {

// A macro's closure is the scope that holds the macro: once the render ends, nothing may keep
// that cycle alive (a server renders a template per request).
TEST(JinjaEvaluator, RendersWithMacrosFreeTheirScopes) {
  const Body body = parse("{% macro f(n) %}{% if n < 3 %}{{ n }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
                          "{% for i in [1] %}{% macro g() %}{{ f(0) }}{% endmacro %}{{ g() }}{% endfor %}");
  std::weak_ptr<Scope> root_seen;
  {
    auto root = std::make_shared<Scope>();
    root_seen = root;
    Evaluator evaluator(std::move(root), testing::fixed_now());
    EXPECT_EQ(evaluator.render(body), "012");
  }
  EXPECT_TRUE(root_seen.expired());
}

}  // namespace
}  // namespace moe::chat::jinja
