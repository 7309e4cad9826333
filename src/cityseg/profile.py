"""Apply a params profile (e.g. ``profiles/cityscapes.yaml``) to params.yaml in place.

    python -m cityseg.profile profiles/cityscapes.yaml --set data.cityscapes_root=/data/cityscapes

The profile is a partial params file: its mappings merge into params.yaml's (``model.extra`` is replaced
whole, as ``config.deep_merge`` does), then each ``--set KEY=VALUE`` (VALUE read as YAML). params.yaml keeps
its comments and key order (ruamel.yaml round trip); a changed value takes the profile's comment, so no
SynthCity-era reason stays beside a real-data value. Every step is checked with the project's config loader
before anything is written, and errors name the file (or ``--set``) and the dotted key; the file is replaced
atomically. A tool, not a pipeline stage: no stage imports it.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken

from cityseg.cli import run_stage
from cityseg.config import ConfigError, benchmark_configs, check_params, load_params
from cityseg.io import atomic_path

COMMENT_COLUMN = 33  # where params.yaml's value comments start


def _yaml() -> YAML:
    y = YAML()  # round trip: comments, key order and flow style survive
    y.width = 4096  # never fold params.yaml's long descriptions
    y.preserve_quotes = True
    # params.yaml spells null "null"; ruamel would write an empty value
    y.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def read_yaml(path: str | Path) -> CommentedMap:
    """The round-trip document of ``path`` (a mapping), or ConfigError naming the file."""
    path = Path(path)
    try:
        doc = _yaml().load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{path}: top level must be a mapping")
    return doc


def dump(doc: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def parse_set(items: list[str]) -> CommentedMap:
    """``["a.b=1", "a.c=[2, 3]"]`` -> ``{a: {b: 1, c: [2, 3]}}`` (values read as YAML; lists in flow style)."""
    out = CommentedMap()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, e.g. train.epochs=100")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: VALUE is not valid YAML ({exc})") from None
        node = out
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, CommentedMap())
            if not isinstance(node, CommentedMap):
                raise ConfigError(f"--set {key}: '{part}' is set to a value and used as a section")
        node[key.split(".")[-1]] = _node(value)
    return out


def _node(value: Any) -> Any:
    """Plain Python -> ruamel nodes, lists in flow style as params.yaml writes them."""
    if isinstance(value, Mapping) and not isinstance(value, CommentedMap):
        return CommentedMap((k, _node(v)) for k, v in value.items())
    if isinstance(value, list) and not isinstance(value, CommentedSeq):
        seq = CommentedSeq(_node(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _comment(node: CommentedMap, key: Any) -> Optional[str]:
    """The text of ``key``'s end-of-line comment in ``node`` (its first line, '#' included), or None."""
    token = node.ca.items.get(key, [None] * 3)[2]
    if token is None or not token.value.lstrip(" ").startswith("#"):  # not the next key's comment lines
        return None
    return token.value.strip().splitlines()[0].strip()


def _set_comment(node: CommentedMap, key: Any, text: str) -> None:
    """Make ``text`` the end-of-line comment of ``key``, keeping what followed the old one (blank lines,
    the next key's comments) but not the old comment's continuation lines."""
    old = node.ca.items.get(key) or [None] * 4
    token, column = old[2], COMMENT_COLUMN
    lines = token.value.split("\n")[1:] if token is not None else [""]
    if token is not None and token.value.lstrip(" ").startswith("#"):  # an end-of-line comment: replace it
        column = token.column
        while lines and lines[0].lstrip().startswith("#") and len(lines[0]) - len(lines[0].lstrip()) >= column:
            lines.pop(0)  # a continuation line of the replaced comment
    new = CommentToken(f"{text}\n" + "\n".join(lines), CommentMark(column), None)
    node.ca.items[key] = [*old[:2], new, *old[3:]]


def merge(target: CommentedMap, override: CommentedMap) -> None:
    """Merge ``override`` into ``target`` in place (mappings recursively, ``extra`` whole)."""
    for key, value in override.items():
        if isinstance(value, Mapping) and key != "extra" and (key not in target or isinstance(target[key], Mapping)):
            merge(target.setdefault(key, CommentedMap()), value)  # a new section too, so its comments move here
        else:
            target[key] = _node(value)
        if isinstance(override, CommentedMap) and (text := _comment(override, key)):
            _set_comment(target, key, text)


def _checked(doc: CommentedMap, source: str) -> dict:
    """The plain params ``doc`` stands for, checked like load_params does; errors name ``source``."""
    params = yaml.safe_load(dump(doc)) or {}
    check_params(params, source)  # every section, and benchmark_configs for every benchmark
    return params


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree or prefix.endswith(".extra"):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}.{key}" if prefix else key).items()}


def apply_profile(params_path: str | Path, profile_path: str | Path, sets: list[str] = ()) -> dict[str, tuple]:
    """Merge ``profile_path`` and then ``sets`` into ``params_path``; return ``{dotted key: (old, new)}``.

    Nothing is written unless params.yaml, params + profile and params + profile + sets all pass
    ``check_params``; an unknown key (or a benchmark or student params.yaml does not have) is a ConfigError naming it.
    """
    params_path = Path(params_path)
    before = load_params(params_path)  # params.yaml itself must be sound: later errors are the profile's
    doc, profile, overrides = read_yaml(params_path), read_yaml(profile_path), parse_set(list(sets))
    for source, layer in ((str(profile_path), profile), ("--set", overrides)):
        for group in ("benchmarks", "students"):
            if extra := sorted(set(layer.get(group) or {}) - set(before.get(group) or {})):
                raise ConfigError(f"{source}: unknown key '{group}.{extra[0]}' ({params_path} has {group}: "
                                  f"{', '.join(before.get(group) or {})})")
        merge(doc, layer)
        after = _checked(doc, source)
    text = dump(doc)
    with atomic_path(params_path) as tmp:
        tmp.write_text(text)
        written = load_params(tmp)  # the file as the stages will read it; `after` passed check_params
        if written != after:
            raise ConfigError(f"{params_path}: the written file does not read back as the merged params")
    old, new = _flat(before), _flat(after)
    return {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}


def missing_weights(params: dict) -> list[str]:
    """``benchmarks.<b>.model.weights_path`` values that name no file here (the node may differ)."""
    out = []
    for name in params.get("benchmarks") or {}:
        model, _ = benchmark_configs(params, name)
        if model.weights_path and not Path(model.weights_path).is_file():
            out.append(f"{name}: {model.weights_path}")
    return out


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", help="a partial params file, e.g. profiles/cityscapes.yaml")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="one more override after the profile (VALUE is YAML); repeatable")
    ap.add_argument("--params", default="params.yaml", help="the params file to change in place")
    args = ap.parse_args(argv)
    changed = apply_profile(args.params, args.profile, args.sets)
    print(f"{args.params}: {len(changed)} value(s) changed by {args.profile}" + (" and --set" if args.sets else ""))
    for key, (old, new) in changed.items():
        print(f"  {key}: {old!r} -> {new!r}")
    for line in missing_weights(load_params(args.params)):
        print(f"warning: weights file not found here (needed where training runs): {line}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
