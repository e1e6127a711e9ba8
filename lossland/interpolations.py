"""OmegaConf's interpolation parsing, memoized.

OmegaConf parses an interpolation string (``${lr}``, ``${oc.select:optimizer.elr,${oc.select:optimizer.lr,null}}``)
with its ANTLR grammar every time it resolves one: 0.08–0.5 ms a string, about 1 ms of every job (validation,
building, records each resolve the same few strings). The parse tree depends on the string alone, and the
resolver only reads it (the values come from the config at resolution time), so :func:`install` keeps each
string's tree and hands it out again. A string that does not parse raises as before (errors are not kept).
``tests/test_compose.py`` checks that every option of every config group resolves to what it resolves to
without the memo.
"""

from __future__ import annotations

import functools

import omegaconf._utils
import omegaconf.base
import omegaconf.grammar_parser

PARSE = omegaconf.grammar_parser.parse  # OmegaConf's own
SITES = (omegaconf.grammar_parser, omegaconf.base, omegaconf._utils)  # the modules that call it by name


@functools.lru_cache(maxsize=4096)
def memo_parse(value: str, parser_rule: str = "configValue", lexer_mode: str = "DEFAULT_MODE"):
    """``omegaconf.grammar_parser.parse``, once per distinct argument."""
    return PARSE(value, parser_rule, lexer_mode)


def install() -> None:
    """Route OmegaConf's parsing through :func:`memo_parse` (where this OmegaConf calls the function we know)."""
    for module in SITES:
        if getattr(module, "parse", None) is PARSE:
            module.parse = memo_parse


def uninstall() -> None:
    """OmegaConf's own parsing back (the test that compares the two)."""
    for module in SITES:
        if getattr(module, "parse", None) is memo_parse:
            module.parse = PARSE
