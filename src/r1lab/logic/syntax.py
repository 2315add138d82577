"""The formula syntax: a small infix language over integers and booleans, and its parser.

    formula  := implies
    implies  := or ( "->" implies )?                  right-associative
    or       := and ( "or" and )*
    and      := not ( "and" not )*
    not      := "not" not | compare
    compare  := sum ( ("==" | "!=" | "<" | "<=" | ">" | ">=") sum )?
    sum      := product ( ("+" | "-") product )*
    product  := unary ( ("*" | "//" | "%") unary )*    the right side of // and % is a positive integer literal
    unary    := "-" unary | atom
    atom     := integer | name | "true" | "false" | "(" formula ")"

Names starting with a lower-case letter are integer variables (`n`, `a1`); names starting with an upper-case
letter are propositions (`P`, `Q2`). `//` and `%` take a positive literal divisor, where Z3's Euclidean division
equals Python's, so a formula means the same in both. Types are checked while parsing (`1 and P` is an error).

The parser is a recursive descent over a token list with hard limits (characters, tokens, nesting depth, digits
of a literal), so model-written text can never make it recurse without bound or build a huge term; nothing is
ever evaluated as Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FORMULA_CHARS = 400
MAX_DEPTH = 32
MAX_LITERAL_DIGITS = 12
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
INT_OPS = ("+", "-", "*", "//", "%")
BOOL_OPS = ("and", "or", "->")
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(->|==|!=|<=|>=|//|[-+*%<>()]))")
_PRECEDENCE = {"->": 1, "or": 2, "and": 3, "not": 4, "cmp": 5, "+": 6, "-": 6, "*": 7, "//": 7, "%": 7, "neg": 8}


class FormulaError(ValueError):
    """Text that is not a formula of the syntax (the message says where and why)."""


@dataclass(frozen=True)
class Formula:
    """One node: `op` is "int", "var", "prop", "bool", "neg", "not", an arithmetic, comparison or boolean
    operator; `args` are child nodes; `value` is the literal, the name, or the truth value."""

    op: str
    args: tuple["Formula", ...] = ()
    value: int | str | bool | None = None

    @property
    def is_bool(self) -> bool:
        return self.op in ("prop", "bool", "not", *BOOL_OPS, *COMPARISONS)

    def names(self) -> set[str]:
        """Every variable and proposition name in the formula."""
        own = {self.value} if self.op in ("var", "prop") else set()
        return own.union(*(a.names() for a in self.args)) if self.args else own

    def size(self) -> int:
        return 1 + sum(a.size() for a in self.args)

    def __str__(self) -> str:
        return _show(self)


def _level(f: Formula) -> int:
    if f.op in COMPARISONS:
        return _PRECEDENCE["cmp"]
    return _PRECEDENCE.get(f.op, 9)


def _show(f: Formula) -> str:
    """Canonical text: single spaces, parentheses only where precedence needs them; parses back to `f`."""
    if f.op == "int":
        return str(f.value)
    if f.op in ("var", "prop"):
        return str(f.value)
    if f.op == "bool":
        return "true" if f.value else "false"
    if f.op in ("neg", "not"):
        inner = _show(f.args[0])
        inner = inner if _level(f.args[0]) >= _level(f) else f"({inner})"
        return f"-{inner}" if f.op == "neg" else f"not {inner}"
    left, right = f.args
    lp, rp = _level(left), _level(right)
    me = _level(f)
    if f.op == "->":  # right-associative
        ls = _show(left) if lp > me else f"({_show(left)})"
        rs = _show(right) if rp >= me else f"({_show(right)})"
    elif f.op in COMPARISONS:  # not associative
        ls = _show(left) if lp > me else f"({_show(left)})"
        rs = _show(right) if rp > me else f"({_show(right)})"
    else:  # left-associative
        ls = _show(left) if lp >= me else f"({_show(left)})"
        rs = _show(right) if rp > me else f"({_show(right)})"
    return f"{ls} {f.op} {rs}"


def _tokens(text: str) -> list[str]:
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].lstrip()[:1]!r} at column {pos + 1}")
        token = m.group(1) or m.group(2) or m.group(3)
        if m.group(1) and len(token) > MAX_LITERAL_DIGITS:
            raise FormulaError(f"integer literal longer than {MAX_LITERAL_DIGITS} digits")
        out.append(token)
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise FormulaError("unexpected end of formula")
        self.i += 1
        return token

    def expect_bool(self, f: Formula, where: str) -> Formula:
        if not f.is_bool:
            raise FormulaError(f"{where} needs a true/false formula, got the integer term {f}")
        return f

    def expect_int(self, f: Formula, where: str) -> Formula:
        if f.is_bool:
            raise FormulaError(f"{where} needs an integer term, got the formula {f}")
        return f

    def nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula nested deeper than {MAX_DEPTH}")

    def implies(self) -> Formula:
        self.nested()
        left = self.disjunction()
        if self.peek() == "->":
            self.take()
            right = self.implies()
            left = Formula("->", (self.expect_bool(left, "'->'"), self.expect_bool(right, "'->'")))
        self.depth -= 1
        return left

    def _chain(self, op: str, sub) -> Formula:
        left = sub()
        while self.peek() == op:
            self.take()
            left = Formula(op, (self.expect_bool(left, f"'{op}'"), self.expect_bool(sub(), f"'{op}'")))
        return left

    def disjunction(self) -> Formula:
        return self._chain("or", self.conjunction)

    def conjunction(self) -> Formula:
        return self._chain("and", self.negation)

    def negation(self) -> Formula:
        if self.peek() == "not":
            self.take()
            self.nested()
            inner = self.negation()
            self.depth -= 1
            return Formula("not", (self.expect_bool(inner, "'not'"),))
        return self.comparison()

    def comparison(self) -> Formula:
        left = self.sum()
        if self.peek() in COMPARISONS:
            op = self.take()
            right = self.sum()
            if op in ("==", "!=") and left.is_bool and right.is_bool:
                return Formula(op, (left, right))
            where = f"'{op}'"
            return Formula(op, (self.expect_int(left, where), self.expect_int(right, where)))
        return left

    def sum(self) -> Formula:
        left = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()
            left = Formula(op, (self.expect_int(left, f"'{op}'"), self.expect_int(self.product(), f"'{op}'")))
        return left

    def product(self) -> Formula:
        left = self.unary()
        while self.peek() in ("*", "//", "%"):
            op = self.take()
            right = self.expect_int(self.unary(), f"'{op}'")
            if op != "*" and not (right.op == "int" and right.value > 0):
                raise FormulaError(f"the right side of '{op}' must be a positive integer literal, got {right}")
            left = Formula(op, (self.expect_int(left, f"'{op}'"), right))
        return left

    def unary(self) -> Formula:
        if self.peek() == "-":
            self.take()
            self.nested()
            inner = self.expect_int(self.unary(), "'-'")
            self.depth -= 1
            if inner.op == "int":
                return Formula("int", value=-inner.value)
            return Formula("neg", (inner,))
        return self.atom()

    def atom(self) -> Formula:
        token = self.take()
        if token.isdigit():
            return Formula("int", value=int(token))
        if token == "(":
            inner = self.implies()
            if self.peek() != ")":
                raise FormulaError("expected ')'")
            self.take()
            return inner
        if token in ("true", "false"):
            return Formula("bool", value=token == "true")
        if token in KEYWORDS or not (token[0].isalpha() or token[0] == "_"):
            raise FormulaError(f"unexpected {token!r}")
        return Formula("prop" if token[0].isupper() else "var", value=token)


def parse_formula(text: str) -> Formula:
    """The formula `text` spells (raises `FormulaError` with the reason otherwise)."""
    parser = _Parser(_tokens(text))
    if not parser.tokens:
        raise FormulaError("empty formula")
    formula = parser.implies()
    if parser.peek() is not None:
        raise FormulaError(f"unexpected {parser.peek()!r} after a complete formula")
    if not formula.is_bool:
        raise FormulaError(f"a proof line must be true or false, got the integer term {formula}")
    return formula
