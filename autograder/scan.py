"""Static scan of one answer cell: does it reach for what it has no business touching?

An exercise answer is a pure tensor function. The scan rejects (the exercise then scores 0 and the
row is flagged ``tampering``) code that could change how it is graded: assignments to attributes of
objects it did not create (``torch.allclose = ...``), redefining builtins such as ``AssertionError``
at the top level, ``global``, the reflection and system modules (``sys``, ``os``, ``builtins``,
``importlib``, ``inspect``, ``gc``, ``ctypes``, ...), ``exec``/``eval``/``open``/``setattr``, IPython's
shell (``get_ipython``, ``set_custom_exc``), dunder attributes (``__dict__``, ``__globals__``, ...),
imports outside an allow-list, and the helper package's ``reference`` and ``checks`` modules.
"""
from __future__ import annotations

import ast
import builtins

ALLOWED_IMPORTS = {
    "torch", "numpy", "math", "re", "collections", "itertools", "functools", "typing", "dataclasses",
    "string", "statistics", "operator", "random", "fractions", "decimal", "heapq", "bisect", "copy",
    "enum", "abc", "numbers", "__future__", "einops", "rlcourse",
}
FORBIDDEN_RLCOURSE = {"reference", "checks"}
FORBIDDEN_NAMES = {
    "exec", "eval", "compile", "__import__", "open", "globals", "locals", "vars", "setattr", "delattr",
    "breakpoint", "input", "__builtins__", "builtins", "sys", "os", "io", "subprocess", "shutil",
    "pathlib", "Path", "importlib", "inspect", "ctypes", "gc", "signal", "atexit", "threading",
    "multiprocessing", "socket", "get_ipython", "IPython", "sqlite3", "sqlalchemy", "nbgrader",
    "pickle", "marshal", "types", "resource", "traceback", "reference", "checks", "unittest",
    "__rlcourse_guard__", "exit", "quit",
}
FORBIDDEN_ATTRS = {"reference", "checks", "excepthook", "set_custom_exc", "showtraceback", "modules",
                   "CustomTB", "custom_exceptions", "events", "system", "popen", "remove", "unlink"}
BUILTIN_NAMES = {n for n in dir(builtins) if not n.startswith("_")}


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Scanner(ast.NodeVisitor):
    def __init__(self, forbidden_aliases=()):
        self.problems: list[str] = []
        self.scopes: list[set[str]] = [set()]
        self.forbidden = FORBIDDEN_NAMES | set(forbidden_aliases)

    def flag(self, node, what):
        self.problems.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    # scopes: names a function binds itself (parameters, assignments) may have attributes set
    def visit_FunctionDef(self, node):
        bound = {a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs}
        for extra in (node.args.vararg, node.args.kwarg):
            if extra:
                bound.add(extra.arg)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                bound.add(sub.id)
        if len(self.scopes) == 1 and node.name in BUILTIN_NAMES:
            self.flag(node, f"redefines the builtin `{node.name}`")
        for deco in node.decorator_list:
            self.visit(deco)
        for default in node.args.defaults + node.args.kw_defaults:
            if default is not None:
                self.visit(default)
        self.scopes.append(bound)
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self.scopes.append({a.arg for a in node.args.args})
        self.visit(node.body)
        self.scopes.pop()

    def visit_ClassDef(self, node):
        if len(self.scopes) == 1 and node.name in BUILTIN_NAMES:
            self.flag(node, f"redefines the builtin `{node.name}`")
        self.generic_visit(node)

    def _check_target(self, target):
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check_target(elt)
        elif isinstance(target, ast.Starred):
            self._check_target(target.value)
        elif isinstance(target, ast.Name):
            if len(self.scopes) == 1 and target.id in BUILTIN_NAMES:
                self.flag(target, f"redefines the builtin `{target.id}`")
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root_name(target)
            local = len(self.scopes) > 1 and root in self.scopes[-1]
            if not local:
                self.flag(target, f"changes `{ast.unparse(target)}`, which the function did not create")

    def visit_Assign(self, node):
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node):
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            self._check_target(target)
        self.generic_visit(node)

    def visit_For(self, node):
        self._check_target(node.target)
        self.generic_visit(node)

    def visit_With(self, node):
        for item in node.items:
            if item.optional_vars is not None:
                self._check_target(item.optional_vars)
        self.generic_visit(node)

    def visit_Global(self, node):
        self.flag(node, "uses `global`")

    def visit_Nonlocal(self, node):
        pass

    def visit_Import(self, node):
        for alias in node.names:
            self._check_module(node, alias.name)
            if len(self.scopes) == 1 and (alias.asname or alias.name.split(".")[0]) in BUILTIN_NAMES:
                self.flag(node, f"redefines the builtin `{alias.asname or alias.name}`")

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level:
            self.flag(node, "relative import")
            return
        self._check_module(node, module)
        for alias in node.names:
            if alias.name == "*":
                self.flag(node, f"`from {module} import *`")
            elif module.split(".")[0] == "rlcourse" and alias.name in FORBIDDEN_RLCOURSE:
                self.flag(node, f"imports rlcourse.{alias.name}")
            if len(self.scopes) == 1 and (alias.asname or alias.name) in BUILTIN_NAMES:
                self.flag(node, f"redefines the builtin `{alias.asname or alias.name}`")

    def _check_module(self, node, module):
        parts = module.split(".")
        if parts[0] not in ALLOWED_IMPORTS:
            self.flag(node, f"imports `{module}` (not needed for an exercise)")
        elif parts[0] == "rlcourse" and len(parts) > 1 and parts[1] in FORBIDDEN_RLCOURSE:
            self.flag(node, f"imports `{module}`")

    def visit_Name(self, node):
        if node.id in self.forbidden:
            self.flag(node, f"uses `{node.id}`")
        elif node.id.startswith("__") and node.id.endswith("__") and node.id != "__name__":
            self.flag(node, f"uses `{node.id}`")

    def visit_Attribute(self, node):
        if node.attr.startswith("__") and node.attr.endswith("__"):
            self.flag(node, f"uses the attribute `{node.attr}`")
        elif node.attr in FORBIDDEN_ATTRS:
            self.flag(node, f"uses the attribute `{node.attr}`")
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)
                    and not name.value.startswith("_") and name.value not in FORBIDDEN_ATTRS):
                self.flag(node, "`getattr` with a computed or private name")
        self.generic_visit(node)


def scan(source: str, forbidden_aliases=()) -> list[str]:
    """Problems found in an answer cell's source (empty list: nothing suspicious).

    A cell that does not parse is not suspicious: it simply fails its tests. IPython magics and shell
    escapes (``%``/``!`` lines) are flagged, since they run outside Python.
    """
    lines = source.splitlines()
    problems = [f"line {i}: IPython magic or shell escape" for i, line in enumerate(lines, 1)
                if line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return problems
    scanner = _Scanner(forbidden_aliases)
    scanner.visit(tree)
    return problems + scanner.problems
