#!/usr/bin/env python3
"""Reference outputs for lumen's chat template engine (tests/chat_template_test.cpp).

Renders every template in tests/data/chat_templates/ (real checkpoint templates, lumen's
built-in fallbacks read out of src/text/chat_template.cpp, and a bank of small templates
that each exercise one Jinja feature) with jinja2 set up the way transformers'
apply_chat_template sets it up (utils/chat_template_utils.py, _compile_jinja_template):

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent, separators, sort_keys)
  globals raise_exception (TemplateError) and strftime_now

and writes tests/data/chat_templates/cases.json: for each case the template, the context it
was rendered with, and either the expected text or the error jinja2 raised.

Usage: python3 scripts/make_chat_template_cases.py   (needs jinja2 >= 3.1)
"""
import json
import pathlib
import re
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "chat_templates"


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker without the index tracking: renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def builtin_templates():
    """lumen's built-in templates, assembled the way builtin_chat_template() assembles them."""
    src = (ROOT / "src" / "text" / "chat_template.cpp").read_text()
    parts = dict(re.findall(r'constexpr const char\* (k\w+) = R"JINJA\((.*?)\)JINJA";', src, re.S))
    table = re.findall(r'\{"(\w+)", std::string\((k\w+)\) \+ (k\w+)\}', src)
    assert table, "could not find the builtin template table in chat_template.cpp"
    return {name: parts[a] + parts[b] for name, a, b in table}


def special_tokens(model):
    """What chat_context_from_tokenizer_config() gives for a shared tokenizer directory."""
    out = {}
    for fname in ("tokenizer_config.json", "special_tokens_map.json"):
        path = DATA / model / fname
        if not path.exists():
            continue
        cfg = json.loads(path.read_text())
        for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
            if key in out or key not in cfg:
                continue
            v = cfg[key]
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                out[key] = v
        extra = cfg.get("additional_special_tokens")
        if "additional_special_tokens" not in out and isinstance(extra, list):
            out["additional_special_tokens"] = [t.get("content") if isinstance(t, dict) else t for t in extra]
    return out


def chat_context(messages, add_generation_prompt, tokens, tools=None, **extra):
    """The keyword arguments apply_chat_template renders with."""
    ctx = {"messages": messages, "tools": tools, "documents": None, "add_generation_prompt": add_generation_prompt}
    ctx.update(tokens)
    ctx.update(extra)
    return ctx


def text_parts(messages):
    """String contents as HF processors' content lists ({"type": "text", "text": ...})."""
    out = []
    for m in messages:
        c = m["content"]
        out.append({**m, "content": [{"type": "text", "text": c}] if isinstance(c, str) else c})
    return out


# ---- conversations ----

SYSTEM_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, who are you?"},
    {"role": "assistant", "content": "I am an assistant. How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]
USER_ONLY = [{"role": "user", "content": "What is 2 + 2?"}]
UNICODE_CHAT = [
    {"role": "user", "content": "  Grüße aus Köln! 你好 🦙 \"quotes\" and 'apostrophes'\n\n  "},
    {"role": "assistant", "content": "\tTabs,\r\nCRLF and trailing spaces   "},
    {"role": "user", "content": "émoji: 👍🏽, math: ∑ x², backslash: \\n stays"},
]
EMPTY_CONTENT = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": " "}]
BAD_ORDER = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]

IMAGE_CHAT = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown in this image?"}]},
]
MULTI_IMAGE_CHAT = [
    {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Compare these"},
            {"type": "image"},
            {"type": "image"},
            {"type": "text", "text": "two pictures."},
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "The first is a cat, the second a dog."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this one? 🐱"}]},
]
IMAGE_NO_SYSTEM = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A red car."}]},
    {"role": "user", "content": [{"type": "text", "text": "What brand?"}]},
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]
TOOL_CHAT = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Zürich?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2, "ratio": 0.5}}}],
    },
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "<think>\nIt is warm.\n</think>\n\nIt is 21 °C and sunny."},
    {"role": "user", "content": "Thanks"},
]
THINK_CHAT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "<think>\nSay bye.\n</think>\n\nBye!"},
]


def model_cases():
    llama2 = special_tokens("llama2")
    llama3 = special_tokens("llama3")
    qwen = special_tokens("qwen")
    cases = []

    def add(name, template_file, ctx, builtin=None):
        cases.append({"name": name, "template_file": template_file, "builtin": builtin, "context": ctx})

    for gen in (False, True):
        g = "gen" if gen else "nogen"
        for conv_name, conv in (("system", SYSTEM_CHAT), ("user_only", USER_ONLY), ("unicode", UNICODE_CHAT), ("empty", EMPTY_CONTENT)):
            add(f"llama3/{conv_name}/{g}", "llama3.jinja", chat_context(conv, gen, llama3))
            add(f"qwen/{conv_name}/{g}", "qwen.jinja", chat_context(conv, gen, qwen))
        add(f"qwen/tools/{g}", "qwen.jinja", chat_context(TOOL_CHAT, gen, qwen, tools=TOOLS))
        add(f"qwen/think/{g}", "qwen.jinja", chat_context(THINK_CHAT, gen, qwen))
        add(f"qwen/no_thinking/{g}", "qwen.jinja", chat_context(USER_ONLY, gen, qwen, enable_thinking=False))
        for conv_name, conv in (("image", IMAGE_CHAT), ("multi_image", MULTI_IMAGE_CHAT), ("image_no_system", IMAGE_NO_SYSTEM),
                                ("text_parts", text_parts(SYSTEM_CHAT[1:])), ("unicode_parts", text_parts(UNICODE_CHAT))):
            add(f"llava-1.5-hf/{conv_name}/{g}", "llava-1.5-hf.jinja", chat_context(conv, gen, llama2))
            add(f"llava-next-mistral-hf/{conv_name}/{g}", "llava-next-mistral-hf.jinja", chat_context(conv, gen, llama2))
            for b in ("llava", "llava_next_mistral", "vicuna", "llama2"):
                add(f"builtin-{b}/{conv_name}/{g}", None, chat_context(conv, gen, llama2), builtin=b)
        # The HF llava template on string content iterates characters (jinja2 semantics).
        add(f"llava-1.5-hf/string_content/{g}", "llava-1.5-hf.jinja", chat_context(SYSTEM_CHAT, gen, llama2))
        for conv_name, conv in (("system", SYSTEM_CHAT), ("user_only", USER_ONLY), ("unicode", UNICODE_CHAT)):
            for b in ("llava", "llava_next_mistral", "vicuna", "llama2"):
                add(f"builtin-{b}/{conv_name}/{g}", None, chat_context(conv, gen, llama2), builtin=b)
    add("builtin-llama2/bad_order", None, chat_context(BAD_ORDER, True, llama2), builtin="llama2")
    add("llava-next-mistral-hf/bad_role", "llava-next-mistral-hf.jinja",
        chat_context([{"role": "tool", "content": [{"type": "text", "text": "x"}]}], False, llama2))
    return cases


# ---- one template per feature ----

FEATURE_CONTEXT = {
    "messages": SYSTEM_CHAT,
    "s": "Hello World",
    "padded": "  \t padded text \n ",
    "n": 3,
    "neg": -7,
    "f": 2.5,
    "big": 12345678901,
    "lst": [3, 1, 2],
    "words": ["banana", "Apple", "cherry", "apple"],
    "d": {"b": 1, "a": 2, "c": None},
    "nested": {"x": {"y": [10, 20, {"z": "deep"}]}},
    "none": None,
    "t": True,
    "fl": False,
    "u8": "héllo wörld straße ǅ İ",
    "empty": "",
    "parts": [{"type": "image"}, {"type": "text", "text": "hi"}, {"type": "text", "text": "there"}],
    "tools": TOOLS,
    "floats": [0.1, 1.0, 1e16, 1.5e-5, 123456789.125, -0.0, 3.0e300],
}

FEATURES = [
    # output and literals
    ("text_only", "plain text, no tags"),
    ("print_values", "{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ none }}|{{ lst }}|{{ d }}|{{ nested }}"),
    ("print_literals", "{{ 1 }} {{ 1.0 }} {{ -2.50 }} {{ 1_000 }} {{ 0x1f }} {{ 1e3 }} {{ 'a' 'b' }} {{ \"q'uote\" }} {{ (1, 2) }} {{ (1,) }} {{ () }} {{ [1, 'x', none, true] }} {{ {'k': 'v', 1: 2.0} }}"),
    ("print_floats", "{% for x in floats %}{{ x }} {% endfor %}{{ 1/3 }} {{ 10/4 }} {{ 2**0.5 }}"),
    ("string_escapes", "{{ 'tab\\there' }}|{{ 'nl\\nx' }}|{{ 'back\\\\slash' }}|{{ 'q\\'s' }}|{{ \"\\u00e9\\x41\" }}|{{ '\\s kept' }}"),
    ("repr_strings", "{{ ['it\\'s', \"say \\\"hi\\\"\", 'both \\' \"', 'nl\\n', 'tab\\t', 'é€', '\\x7f', '\\u00a0', '\\\\'] }}"),
    ("print_tuple_expr", "{{ 1, 2 }}"),
    # whitespace control
    ("trim_blocks", "{% if true %}\nline\n{% endif %}\nafter\n"),
    ("lstrip_blocks", "  {% if true %}\n    indented\n  {% endif %}\n  {{ s }}\n"),
    ("dash_control", "a   {%- if true -%}   b   {%- endif -%}   c\n  {{- s -}}  \n d {#- comment -#}  e"),
    ("plus_control", "x\n  {%+ if true +%}\ny\n  {%- endif %}\nz"),
    ("comment_trim", "a\n  {# comment #}\nb{# c2 #}\n\nc"),
    ("crlf_source", "one\r\n{% if true %}\r\ntwo\r\n{% endif %}\r\nthree\r\n"),
    ("trailing_newline", "x\n"),
    ("two_trailing_newlines", "x\n\n"),
    ("lstrip_after_var", "{{ s }}   {% if true %}X{% endif %}"),
    ("lstrip_first_line", "   {% if true %}X{% endif %}"),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}\nafter"),
    ("var_no_trim", "{{ s }}\n{{ n }}\n"),
    ("raw_dash", "a\n\t {%- raw -%}  x {{ y }}  {%- endraw -%}  \nb"),
    ("raw_lstrip", "a\n  {% raw %}\n  x\n  {% endraw %}\nb"),
    ("indented_loop_lines", "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}"),
    ("comment_dash_lines", "x {# c #} y\n  {#- c -#}\n z"),
    ("more_floats", "{{ -0.0 }} {{ 1e-7 }} {{ 100000000000000000.0 }} {{ 0.5e-4 }} {{ 12345.678e10 }} {{ 0.1 + 0.2 }} {{ 1e22 }} {{ 9007199254740993.0 }}"),
    # conditionals
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x > 3 %}big{% else %}other{% endif %} {% endfor %}"),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}{{ 'T' if undefined_thing else 'F' }}"),
    ("ternary_no_else", "[{{ 'yes' if fl }}]"),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ none or [] }} {{ '' and 1 }} {{ not none }} {{ not 'a' }}"),
    # loops
    ("loop_vars", "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}|{% endfor %}"),
    ("loop_prev_next", "{% for x in lst %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}"),
    ("loop_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{% endfor %}"),
    ("loop_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}:{{ loop.length }} {% endfor %}"),
    ("loop_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in none_list %}x{% else %}undef-empty{% endfor %}"),
    ("loop_dict", "{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}"),
    ("loop_string", "{% for c in u8 %}{{ c }}.{% endfor %}"),
    ("loop_unpack_tuples", "{% for a, b in [(1, 2), [3, 4], 'xy'] %}{{ a }}-{{ b }} {% endfor %}"),
    ("loop_nested", "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}|{% endfor %}"),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("loop_scope", "{% set x = 0 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}"),
    ("if_scope_leaks", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}"),
    ("range_forms", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }}"),
    # set, namespace, macros
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set c = [1, 2] %}{{ c }}"),
    ("set_block", "{% set block %}inside {{ s }}{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}"),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}"),
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}"),
    ("macro_sees_globals", "{% macro show() %}{{ s }}/{{ n }}{% endmacro %}{{ show() }}"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}"),
    ("macro_recursion", "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}"),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"),
    ("filter_block", "{% filter upper %}shout {{ s }}{% endfilter %}|{% filter trim %}   spaced   {% endfilter %}"),
    ("generation_block", "{% for m in messages %}{% generation %}{{ m.role }} {% endgeneration %}{% endfor %}"),
    # expressions
    ("arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ big * 3 }}"),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ not 1 == 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' ~ 1 ~ 2 * 3 }} {{ 'a' ~ 1 + 2 if false else 'lazy' }} {{ -n|abs }}"),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] * 3 }} {{ [1, 2] + [3] }} {{ s ~ n ~ none ~ t }}"),
    ("comparisons", "{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }} {{ 1 != '1' }} {{ 2 >= 2 }} {{ 'é' > 'z' }} {{ (1, 2) == [1, 2] }}"),
    ("membership", "{{ 'ell' in s }} {{ 2 in lst }} {{ 'a' in d }} {{ 'zz' not in s }} {{ 5 not in lst }} {{ 'x' in undefined_thing }}"),
    ("attribute_item_access", "{{ messages[0].role }} {{ messages[0]['content'] }} {{ nested.x.y[2].z }} {{ nested['x']['y'][-1]['z'] }} {{ lst[-1] }} {{ s[0] }} {{ u8[1] }} {{ lst.0 }}"),
    ("missing_access_is_undefined", "[{{ d.missing }}][{{ lst[10] }}][{{ messages[0].nope }}][{{ none.attr }}][{{ s.nope }}][{{ d['zz'] }}]"),
    ("slicing", "{{ lst[1:] }} {{ lst[:2] }} {{ lst[::-1] }} {{ lst[::2] }} {{ s[1:4] }} {{ s[-5:] }} {{ u8[::-1] }} {{ lst[5:] }} {{ lst[-10:1] }} {{ messages[1:]|length }} {{ s[:] }} {{ lst[2:0:-1] }}"),
    ("tests", "{{ s is string }} {{ n is number }} {{ f is float }} {{ n is integer }} {{ t is boolean }} {{ d is mapping }} {{ lst is sequence }} {{ s is iterable }} {{ none is none }} {{ x is defined }} {{ x is undefined }} {{ s is defined }} {{ t is true }} {{ fl is false }} {{ 1 is true }} {{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 2 is in lst }} {{ 3 is eq 3 }} {{ 3 is equalto 4 }} {{ 5 is gt 2 }} {{ 5 is lessthan 2 }} {{ 1 is ne 2 }} {{ range is callable }} {{ none is not none }}"),
    ("undefined_behaviour", "[{{ nope }}][{{ nope|default('dflt') }}][{{ nope|length }}][{{ nope is defined }}][{% for x in nope %}x{% endfor %}][{{ nope|trim }}][{{ nope == nope }}][{{ nope|string }}][{{ nope ~ 'x' }}]"),
    ("method_calls", "{{ padded.strip() }}|{{ padded.lstrip() }}|{{ padded.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'hello wORLD'.title() }}|{{ 'hELLO'.capitalize() }}|{{ s.replace('l', 'L') }}|{{ s.replace('l', 'L', 1) }}|{{ s.startswith('He') }}|{{ s.endswith(('x', 'ld')) }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ s.find('o') }}|{{ s.count('l') }}|{{ '-'.join(['a', 'b']) }}|{{ 'x\\ny\\r\\nz'.splitlines() }}|{{ '{} and {}'.format('a', 'b') }}|{{ '{1}{0}{name}'.format('a', 'b', name='c') }}|{{ '123'.isdigit() }}|{{ 'ab'.isalpha() }}"),
    ("unicode_case", "{{ u8.upper() }}|{{ u8|upper }}|{{ u8.title() }}|{{ u8|title }}|{{ u8|capitalize }}|{{ u8|length }}|{{ u8|lower }}|{{ 'ßa ﬁx ǆ'.title() }}|{{ 'ßa'|capitalize }}|{{ 'ǆa'.capitalize() }}"),
    ("dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }}"),
    ("tojson", "{{ tools|tojson }}\n{{ d|tojson }}\n{{ 'é\"\\n'|tojson }}\n{{ floats|tojson }}\n{{ [none, true, 1, 2.5]|tojson }}"),
    ("tojson_options", "{{ tools[0]|tojson(indent=2) }}\n{{ d|tojson(indent=4, sort_keys=true) }}\n{{ d|tojson(separators=(',', ':')) }}\n{{ 'é'|tojson(ensure_ascii=true) }}\n{{ [1, [2, {}], []]|tojson(indent=1) }}\n{{ {'k': [1]}|tojson(indent='\\t') }}"),
    ("filters_text", "{{ padded|trim }}|{{ 'xxyxx'|trim('x') }}|{{ s|lower }}|{{ s|upper }}|{{ 'hello-world (x) [y]z'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ s|replace('o', '0') }}|{{ s|replace('l', '', 2) }}|{{ s|center(17) }}|{{ s|length }}|{{ s|count }}|{{ s|reverse }}|{{ s|wordcount }}|{{ '<a href=\"x\">&</a>'|escape }}|{{ s|safe }}"),
    ("filters_seq", "{{ lst|first }} {{ lst|last }} {{ lst|join(', ') }} {{ lst|sort }} {{ lst|sort(reverse=true) }} {{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ words|unique|list }} {{ words|unique(case_sensitive=true)|list }} {{ lst|max }} {{ lst|min }} {{ words|max }} {{ lst|sum }} {{ lst|list }} {{ 'abc'|list }} {{ lst|reverse|list }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ s|first }} {{ s|last }}"),
    ("filters_select", "{{ parts|selectattr('type', 'equalto', 'text')|map(attribute='text')|join(' ') }}|{{ parts|rejectattr('type', 'equalto', 'text')|list }}|{{ parts|selectattr('text')|list|length }}|{{ lst|select('odd')|list }}|{{ lst|reject('odd')|list }}|{{ lst|select('gt', 1)|list }}|{{ words|map('upper')|list }}|{{ parts|map(attribute='text', default='-')|list }}|{{ messages|map(attribute='role')|unique|list }}|{{ nested.x.y|selectattr('z', 'defined')|list }}|{{ parts|sum(attribute='missing', start=0) if false else 'skip' }}"),
    ("filters_numbers", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.99|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'y'|float }} {{ 5|float }} {{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }} {{ n|string }} {{ f|string ~ '!' }}"),
    ("filters_default", "{{ none|default('a') }} {{ nope|default('b') }} {{ ''|default('c', true) }} {{ 0|d('d', boolean=true) }} {{ s|d('e') }} {{ nope|default }}|"),
    ("filters_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='> ', blank=true) }}|{{ 'x'|indent(first=true) }}"),
    ("filters_items_attr", "{{ d|items|list }} {{ nope|items|list }} {{ d|length }} {{ d|list }} {{ d|first }} {{ s|attr('upper') is callable }}"),
    ("format_filter", "{{ '%s is %d years, %.2f%%'|format('Al', 30, 1.5) }} {{ '%r'|format('x') }}"),
    ("dict_literal_order", "{% set m = {'z': 1, 'a': 2, 'z': 3} %}{{ m }} {{ m|tojson }}"),
    ("globals_dict", "{{ dict(a=1, b='x') }} {{ dict(d, e=5) }}"),
    ("content_parts_render", "{% for m in [{'role': 'user', 'content': parts}] %}{% for p in m.content %}{% if p.type == 'image' %}<image>{% elif p['type'] == 'text' %}{{ p.text }}{% endif %}{% endfor %}{% endfor %}"),
    ("bos_eos_style", "{{ bos_tok }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] | trim + ' [/INST]' }}{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] | trim + ' ' + eos_tok }}{% endif %}{% endfor %}"),
    ("is_not_chain", "{{ none is not none }} {{ s is not string }} {{ not s is string }} {{ 1 if none is none else 2 }}"),
    ("test_arg_forms", "{{ 6 is divisibleby(3) }} {{ 'a' is in 'abc' }} {{ 'a' is in(['a']) }} {{ lst is sameas lst }}"),
    # errors jinja2 raises at run time
    ("error_raise", "before{{ raise_exception('Custom failure: ' ~ n) }}after"),
    ("error_undefined_attr", "{{ nope.attr }}"),
    ("error_undefined_add", "{{ nope + 1 }}"),
    ("error_str_plus_int", "{{ 'a' + 1 }}"),
    ("error_div_zero", "{{ 1 / 0 }}"),
    ("error_not_callable", "{{ s() }}"),
    ("error_unsafe_append", "{{ lst.append(4) }}"),
    ("error_compare_types", "{{ 1 < 'a' }}"),
    ("error_iterate_int", "{% for x in 5 %}{% endfor %}"),
    ("error_range_too_big", "{{ range(1000000)|length }}"),
    ("error_set_attr_on_dict", "{% set d.x = 1 %}"),
    ("error_unpack", "{% for a, b in [(1, 2, 3)] %}{% endfor %}"),
    ("error_tojson_undefined", "{{ nope|tojson }}"),
    # errors jinja2 raises while parsing
    ("syntax_unclosed_if", "{% if true %}x"),
    ("syntax_unknown_filter", "{{ s|frobnicate }}"),
    ("syntax_unknown_test", "{{ s is frobnicated }}"),
    ("syntax_bad_expression", "{{ 1 + }}"),
    ("syntax_unknown_tag", "{% frob %}"),
    ("syntax_unclosed_var", "{{ s "),
    ("syntax_unclosed_string", "{{ 'abc }}"),
    ("syntax_unclosed_comment", "{# never closed"),
    ("syntax_endfor_mismatch", "{% if true %}{% endfor %}"),
    ("syntax_break_outside_loop", "{% break %}"),
]


def render(template, ctx):
    try:
        return {"expected": ENV.from_string(template).render(**ctx)}
    except (jinja2.exceptions.TemplateSyntaxError, SyntaxError) as e:
        return {"error": {"kind": "syntax", "message": str(e)}}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception raises the base TemplateError; UndefinedError, SecurityError and
        # others are subclasses.
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "runtime"
        return {"error": {"kind": kind, "message": str(e)}}
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError) as e:
        return {"error": {"kind": "runtime", "message": f"{type(e).__name__}: {e}"}}


def main():
    builtins = builtin_templates()
    # Contexts are stored once and named by index; many cases share one.
    out = {"generator": "scripts/make_chat_template_cases.py", "jinja2": jinja2.__version__, "builtins": builtins,
           "contexts": [], "cases": []}
    context_ids = {}

    def context_id(ctx):
        key = json.dumps(ctx, sort_keys=False, ensure_ascii=False)
        if key not in context_ids:
            context_ids[key] = len(out["contexts"])
            out["contexts"].append(ctx)
        return context_ids[key]

    for case in model_cases():
        if case["builtin"]:
            template = builtins[case["builtin"]]
        else:
            template = (DATA / case["template_file"]).read_text()
        entry = {"name": case["name"], "context": context_id(case["context"])}
        if case["builtin"]:
            entry["builtin"] = case["builtin"]
        else:
            entry["template_file"] = case["template_file"]
        entry.update(render(template, case["context"]))
        out["cases"].append(entry)
    for name, template in FEATURES:
        ctx = dict(FEATURE_CONTEXT, bos_tok="<s>", eos_tok="</s>")
        entry = {"name": "feature/" + name, "template": template, "context": context_id(ctx)}
        entry.update(render(template, ctx))
        out["cases"].append(entry)
    path = DATA / "cases.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    n_err = sum("error" in c for c in out["cases"])
    print(f"{path}: {len(out['cases'])} cases ({n_err} expect an error)", file=sys.stderr)


if __name__ == "__main__":
    main()
