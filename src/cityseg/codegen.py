"""Standalone source copied out of the library: the submission's model.py, predict.py and process_data.py.

The course servers import model.py and run predict.py where cityseg is not installed, so a submission
needs its architecture and its pre- and post-processing as plain source. A second hand-kept copy would
drift from the code that was trained and scored, so `bundle` copies the definitions themselves: the
requested functions and classes plus every module-level definition they use (functions, classes,
constants), following ``from cityseg.x import y`` into y's own module, with only the third-party imports
those definitions use. The package stage's self-test then checks the copy against the pipeline.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
from typing import Any, Iterable

PACKAGE = "cityseg"


@dataclasses.dataclass
class _Module:
    """One parsed library module: its top-level definitions and imports, by the name they bind."""

    name: str
    lines: list[str]
    defs: dict[str, ast.stmt]  # functions, classes and simple assignments
    imports: dict[str, str]  # bound name -> the (third-party or stdlib) import statement, unparsed
    ours: dict[str, tuple[str, str]]  # bound name -> (cityseg module, its name there)


def _bound(alias: ast.alias, plain_import: bool) -> str:
    if alias.asname:
        return alias.asname
    return alias.name.split(".")[0] if plain_import else alias.name


@functools.lru_cache(maxsize=None)
def _parse(name: str) -> _Module:
    source = inspect.getsource(importlib.import_module(name))
    mod = _Module(name, source.splitlines(), {}, {}, {})
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            mod.defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    mod.defs[target.id] = node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                mod.imports[_bound(alias, True)] = ast.unparse(ast.Import([alias]))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = node.module or ""
            for alias in node.names:
                if module == PACKAGE or module.startswith(PACKAGE + "."):
                    mod.ours[_bound(alias, False)] = (module, alias.name)
                else:
                    mod.imports[_bound(alias, False)] = ast.unparse(ast.ImportFrom(module, [alias], 0))
    return mod


class _Names(ast.NodeVisitor):
    """Every name a definition reads, annotations left out (the bundle keeps them as unevaluated strings)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)

    def visit_arg(self, node: ast.arg) -> None:  # skip the annotation
        pass

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for child in [*node.decorator_list, *node.args.defaults, *[d for d in node.args.kw_defaults if d], *node.body]:
            self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)


def _used(node: ast.stmt) -> set[str]:
    visitor = _Names()
    visitor.visit(node)
    return visitor.names


def _text(mod: _Module, node: ast.stmt) -> str:
    """The definition's source lines, with its decorators and the comment lines directly above it."""
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    while start > 1 and mod.lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return "\n".join(mod.lines[start - 1 : node.end_lineno])


def _locate(obj: Any) -> tuple[str, str]:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__name__", None)
    if not (module and name and (module == PACKAGE or module.startswith(PACKAGE + "."))):
        raise ValueError(f"bundle: {obj!r} is not a function or class of the {PACKAGE} package")
    return module, name


@dataclasses.dataclass
class _Bundle:
    overrides: dict[str, Any]
    nodes: dict[str, set[ast.stmt]] = dataclasses.field(default_factory=dict)  # module -> chosen definitions
    aliases: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # module -> "alias = name" lines
    imports: dict[str, None] = dataclasses.field(default_factory=dict)  # ordered set of import statements
    owner: dict[str, str] = dataclasses.field(default_factory=dict)  # bound name -> module defining it
    needs: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # module -> modules it takes names from

    def claim(self, name: str, module: str) -> None:
        if self.owner.setdefault(name, module) != module:
            raise ValueError(f"bundle: {name!r} is defined in both {self.owner[name]} and {module}; rename one")

    def add(self, module: str, name: str, seen: set[tuple[str, str]]) -> None:
        if (module, name) in seen:
            return
        seen.add((module, name))
        mod = _parse(module)
        self.needs.setdefault(module, [])
        if name in mod.ours:  # imported from another cityseg module: bundle it from there
            other, original = mod.ours[name]
            self.needs[module].append(other)
            self.add(other, original, seen)
            if original != name:
                self.claim(name, module)
                self.aliases.setdefault(module, []).append(f"{name} = {original}")
        elif name in mod.imports:
            self.imports[mod.imports[name]] = None
        elif name in mod.defs:
            self.claim(name, module)
            node = mod.defs[name]
            if name not in self.overrides:
                for used in sorted(_used(node)):
                    if used != name and (used in mod.defs or used in mod.imports or used in mod.ours):
                        self.add(module, used, seen)
            self.nodes.setdefault(module, set()).add(node)
        else:
            raise ValueError(f"bundle: {module} has no top-level definition {name!r}")

    def order(self) -> list[str]:
        """Modules with the ones they take names from first (depth-first post-order)."""
        done: list[str] = []

        def visit(module: str) -> None:
            if module not in done:
                done.append(module)  # marked before its dependencies: a cycle cannot recurse forever
                for other in self.needs.get(module, []):
                    visit(other)
                done.remove(module)
                done.append(module)

        for module in self.needs:
            visit(module)
        return done

    def source(self) -> tuple[list[str], str]:
        parts = []
        for module in self.order():
            mod, chunk = _parse(module), list(self.aliases.get(module, []))
            for node in sorted(self.nodes.get(module, ()), key=lambda n: n.lineno):
                name = next((n for n, d in mod.defs.items() if d is node and n in self.overrides), None)
                chunk.append(f"{name} = {self.overrides[name]!r}" if name else _text(mod, node))
            if chunk:
                parts.append(f"# ---- from {module.replace('.', '/')}.py\n\n" + "\n\n\n".join(chunk))
        return list(self.imports), "\n\n\n".join(parts)


def bundle(objects: Iterable[Any], overrides: dict[str, Any] | None = None) -> tuple[list[str], str]:
    """(import statements, source) of ``objects`` (cityseg functions/classes) and everything they use.

    ``overrides`` pins module-level constants by name: ``NAME = repr(value)`` replaces the definition.
    The source keeps each module's order (a module's dependencies come before it), so class bases and
    default arguments are defined before use, as they were in the library.
    """
    state, seen = _Bundle(dict(overrides or {})), set()
    for obj in objects:
        state.add(*_locate(obj), seen)
    return state.source()


def render(doc: str, imports: Iterable[str], body: str, tail: str = "") -> str:
    """A standalone Python file: docstring, ``from __future__ import annotations`` (the bundled annotations
    name library types that are not copied), the imports (stdlib and third-party), the body and ``tail``."""
    lines = sorted(set(imports), key=lambda s: (s.startswith("from "), s))
    head = f'"""{doc}"""\n\nfrom __future__ import annotations\n\n' + "\n".join(lines)
    text = "\n\n\n".join(part.strip("\n") for part in (head, body, tail) if part.strip()) + "\n"
    check_standalone(text)
    return text


def check_standalone(source: str, where: str = "generated source") -> None:
    """Raise ValueError if ``source`` does not compile or imports cityseg anywhere."""
    tree = ast.parse(source, where)
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n == PACKAGE or n.startswith(PACKAGE + ".") for n in names):
            raise ValueError(f"{where}: imports {PACKAGE} (line {node.lineno}); a submission must stand alone")
    compile(tree, where, "exec")
