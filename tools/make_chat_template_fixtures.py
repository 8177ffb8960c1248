#!/usr/bin/env python3
"""Expected renderings of chat templates, as transformers' apply_chat_template renders them (jinja2 with
transformers' environment: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, a
tojson filter with ensure_ascii=False, raise_exception). The templates follow the published tokenizer_config.json
chat templates of common model families (ChatML/Qwen, Llama 2, Llama 3, Mistral, Zephyr, Gemma) plus one
that exercises the rest of the Jinja subset src/tokenizer/chat_template.c implements.

usage: /usr/bin/python3 tools/make_chat_template_fixtures.py > tests/fixtures/chat_templates/cases.json
"""
import json
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

TEMPLATES = {
    "chatml": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "llama2": (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
        "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
        "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
        "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
        "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
    "zephyr": (
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
        "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
        "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n"
        "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
    "mistral": (
        "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n"
        "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n"
        "{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n"
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
        "        {{- raise_exception('After the optional system message, conversation roles must alternate "
        "user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message[\"role\"] == \"user\" %}\n"
        "        {%- if loop.last and system_message is defined %}\n"
        "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n"
        "        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
        "        {%- endif %}\n    {%- elif message[\"role\"] == \"assistant\" %}\n"
        "        {{- \" \" + message[\"content\"]|trim + eos_token}}\n    {%- else %}\n"
        "        {{- raise_exception(\"Only user and assistant roles are supported, with the exception of an "
        "initial optional system message!\") }}\n    {%- endif %}\n{%- endfor %}\n"),
    "gemma": (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
        "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"),
    # Qwen2.5-Instruct's template (tools, tool calls and tool responses; a default system prompt)
    "qwen2.5": (
        "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
        "        {{- messages[0]['content'] }}\n    {%- else %}\n"
        "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
        "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
        "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
        "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
        "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
        "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n"
        "    {%- if messages[0]['role'] == 'system' %}\n"
        "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
        "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
        "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
        "(message.role == \"assistant\" and not message.tool_calls) %}\n"
        "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
        "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
        "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
        "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
        "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
        "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
        "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
        "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
        "    {%- elif message.role == \"tool\" %}\n"
        "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
        "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
        "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
        "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
        "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
        "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"),
    # Everything else the subset implements: namespace, for-if / for-else, loop.* fields, filters, tests,
    # conditional expressions, ~, in / not in, slices, negative indexes, comparisons, arithmetic,
    # break / continue, comments, whitespace control, dict/list literals, string methods.
    "constructs": (
        "{# a comment #}{% set ns = namespace(sys=false, n=0) %}\n"
        "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = true %}{% endif %}"
        "{% set ns.n = ns.n + 1 %}{% endfor %}\n"
        "  {% if not ns.sys %}[no system]{% endif %} n={{ ns.n }} len={{ messages|length }}\n"
        "{% for m in messages if m.role != 'system' %}\n"
        "  {{ loop.index }}/{{ loop.length }}{{ ' first' if loop.first else '' }}{{ ' last' if loop.last }}"
        " {{ m['role']|upper }}:{{ m.content|tojson }}\n"
        "{%- if m.content.startswith('Hi') %} (greeting){% endif %}\n"
        "{% else %}\n  (only system)\n{% endfor %}\n"
        "{% for m in messages[::-1] %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% if m.role == 'system' %}{% continue %}{% endif %}{{ m.role[0] ~ loop.index0 }} {% endfor %}\n"
        "last={{ messages[-1].role }} {{ 'user' in ['user', 'x'] }} {{ 'q' not in 'abc' }}"
        " {{ (7 // 2) * 3 - 1 }} {{ 7 % 3 }} {{ 2 < 3 and 3 >= 3 }} {{ none is none }}"
        " {{ messages[0].get('name', 'anon') }} {{ {'a': 1}['a'] }}\n"
        "{{- ' trimmed' -}}   \n  {{ 'x' | default('d') }} {{ undefined_name | default('dflt') }}"
        " {{ messages[0].content | lower | replace(' ', '_') }}\n"
        "{% if add_generation_prompt %}<gen>{% endif %}"),
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hi there"}],
    "user_assistant": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": " It is 4. "}],
    "system_multi": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi, who are you?"},
        {"role": "assistant", "content": "A bot."},
        {"role": "user", "content": "Name a \"colour\" — in ünïcode ☃\nplease"},
    ],
    "system_only": [{"role": "system", "content": "Only me"}],
    "bad_order": [{"role": "assistant", "content": "I speak first"}, {"role": "user", "content": "no"}],
    "tool_calls": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "21 and sunny."},
    ],
}

BOS, EOS = "<s>", "</s>"


def main():
    cases = []
    for tname, tmpl in TEMPLATES.items():
        for cname, conv in CONVERSATIONS.items():
            for gen in (False, True):
                case = {"template_name": tname, "template": tmpl, "conversation": cname, "messages": conv,
                        "add_generation_prompt": gen, "bos_token": BOS, "eos_token": EOS}
                try:
                    case["expected"] = env.from_string(tmpl).render(
                        messages=conv, add_generation_prompt=gen, bos_token=BOS, eos_token=EOS)
                except TemplateError as e:
                    case["error"] = str(e)
                except (jinja2.TemplateError, TypeError, IndexError) as e:
                    # Shapes the template itself cannot handle (e.g. a system-only chat in llama2): skip.
                    print("skip %s/%s/%s: %s" % (tname, cname, gen, e), file=sys.stderr)
                    continue
                cases.append(case)
    json.dump({"generator": "tools/make_chat_template_fixtures.py", "jinja2": jinja2.__version__, "cases": cases},
              sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
