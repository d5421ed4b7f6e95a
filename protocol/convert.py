"""Strict conversion between records/messages and JSON-safe Python values, driven by type hints.

Supported field types: ``str``, ``int`` (``bool`` refused), ``float`` (ints accepted, NaN/Inf
refused), ``bool``, ``Literal[...]``, ``X | None``, unions of those, ``tuple[X, ...]``,
``tuple[X, Y]``, ``dict[str, X]``, ``typing.Any`` (any JSON value) and nested dataclasses.
Every mismatch raises :class:`InvalidArgument` naming the field path (``generate.region.start``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from protocol.errors import InvalidArgument

_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


@functools.cache
def field_types(cls: Any) -> dict[str, Any]:
    """Resolved type hints of a dataclass's init fields (ClassVars excluded)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


@functools.cache
def required_fields(cls: Any) -> frozenset[str]:
    return frozenset(
        f.name for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    for t, name in _JSON_NAMES.items():
        if type(value) is t:
            return name
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fail(path: str, expected: str, value: Any) -> InvalidArgument:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return InvalidArgument(f"{path}: expected {expected}, got {_describe(value)} {shown}", field=path)


def type_name(tp: Any) -> str:
    """Human-readable name of a field type, for error messages and docs."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any JSON value"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"object ({tp.__name__})"
    if tp in _JSON_NAMES:
        return _JSON_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {type_name(args[0])}"
        return f"array of {len(args)} [" + ", ".join(type_name(a) for a in args) + "]"
    if origin is dict:
        return f"object of {type_name(typing.get_args(tp)[1])}"
    return str(tp)


def from_json_value(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` (parsed JSON) against ``tp`` and convert it (lists -> tuples, dicts -> records)."""
    return _converter(tp)(value, path)


_Conv = Callable[[Any, str], Any]


@functools.cache
def _converter(tp: Any) -> _Conv:
    """A checking converter for one field type, built once per type (decoding is hot in the daemon)."""
    origin = typing.get_origin(tp)
    name = type_name(tp)
    if tp is Any:
        return lambda v, p: v
    if tp is type(None):
        def null(v: Any, p: str) -> Any:
            if v is None:
                return None
            raise _fail(p, "null", v)
        return null
    if tp is bool:
        def boolean(v: Any, p: str) -> Any:
            if isinstance(v, bool):
                return v
            raise _fail(p, "boolean", v)
        return boolean
    if tp is int:
        def integer(v: Any, p: str) -> Any:
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            raise _fail(p, "integer", v)
        return integer
    if tp is float:
        def number(v: Any, p: str) -> Any:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not math.isfinite(v):
                    raise _fail(p, "finite number", v)
                return float(v)
            raise _fail(p, "number", v)
        return number
    if tp is str:
        def string(v: Any, p: str) -> Any:
            if isinstance(v, str):
                return v
            raise _fail(p, "string", v)
        return string
    if origin is Literal:
        allowed = frozenset(typing.get_args(tp))

        def literal(v: Any, p: str) -> Any:
            if isinstance(v, str) and v in allowed:
                return v
            raise _fail(p, name, v)
        return literal
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        convs = [_converter(a) for a in args if a is not type(None)]

        def union(v: Any, p: str) -> Any:
            if v is None:
                if nullable:
                    return None
                raise _fail(p, name, v)
            if len(convs) == 1:
                return convs[0](v, p)  # its own error names the field precisely
            for conv in convs:
                try:
                    return conv(v, p)
                except InvalidArgument:
                    continue
            raise _fail(p, name, v)
        return union
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0])

            def array(v: Any, p: str) -> Any:
                if not isinstance(v, (list, tuple)):
                    raise _fail(p, name, v)
                return tuple(item(x, f"{p}[{i}]") for i, x in enumerate(v))
            return array
        items = [_converter(a) for a in args]

        def fixed(v: Any, p: str) -> Any:
            if not isinstance(v, (list, tuple)) or len(v) != len(items):
                raise _fail(p, name, v)
            return tuple(conv(x, f"{p}[{i}]") for i, (conv, x) in enumerate(zip(items, v)))
        return fixed
    if origin is dict:
        value_conv = _converter(typing.get_args(tp)[1])

        def mapping(v: Any, p: str) -> Any:
            if not isinstance(v, dict):
                raise _fail(p, name, v)
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise _fail(f"{p} key", "string", k)
                out[k] = value_conv(x, f"{p}.{k}")
            return out
        return mapping
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        def record(v: Any, p: str) -> Any:
            if not isinstance(v, dict):
                raise _fail(p, name, v)
            return record_from_dict(tp, v, p)
        return record
    raise TypeError(f"unsupported protocol field type {tp!r}")  # a bug in a record definition


@functools.cache
def _plan(cls: Any) -> tuple[dict[str, _Conv], frozenset[str], frozenset[str]]:
    """Per record class: field converters, all field names, required field names."""
    hints = field_types(cls)
    return {n: _converter(t) for n, t in hints.items()}, frozenset(hints), required_fields(cls)


def record_from_dict(cls: type, data: dict[str, Any], path: str, ignore: frozenset[str] = frozenset()) -> Any:
    """Build dataclass ``cls`` from a JSON object, strictly: unknown and missing fields are refused."""
    convs, names, required = _plan(cls)
    if not names.issuperset(data.keys() - ignore):
        unknown = sorted(data.keys() - names - ignore)
        where = f"{path}.{unknown[0]}"
        raise InvalidArgument(f"{where}: unknown field (known: {', '.join(sorted(names))})", field=where)
    if not required.issubset(data.keys()):
        missing = sorted(required - data.keys())
        where = f"{path}.{missing[0]}"
        hint = field_types(cls)[missing[0]]
        raise InvalidArgument(f"{where}: missing required field ({type_name(hint)})", field=where)
    kwargs = {n: conv(data[n], f"{path}.{n}") for n, conv in convs.items() if n in data}
    return cls(**kwargs)


def check_literals(record: Any, where: str) -> None:
    """Check the ``Literal`` (enum) fields of a record built in Python (decoding checks them anyway)."""
    for name, allowed, tp in _literal_fields(type(record)):
        value = getattr(record, name)
        if value is not None and value not in allowed:
            raise _fail(f"{where}.{name}", type_name(tp), value)


@functools.cache
def _literal_fields(cls: Any) -> tuple[tuple[str, frozenset[Any], Any], ...]:
    out = []
    for name, tp in field_types(cls).items():
        allowed = _literal_values(tp)
        if allowed is not None:
            out.append((name, frozenset(allowed), tp))
    return tuple(out)


def _literal_values(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


def to_json_value(value: Any) -> Any:
    """Records -> dicts (``None`` fields omitted), tuples -> lists; JSON scalars as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return value


def record_to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON object: ``None`` fields omitted, ints in float fields written as floats."""
    out: dict[str, Any] = {}
    hints = field_types(type(record))
    for name, tp in hints.items():
        value = getattr(record, name)
        if value is None:
            continue
        if type(value) is int and tp in _FLOATISH:
            value = float(value)
        out[name] = to_json_value(value)
    return out


_FLOATISH = (float, float | None)
