"""Hypothesis strategies derived from our schema types, so every struct can be fuzzed from its declaration."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from jfds_device.codec import schema


def for_type(ftype: schema.FieldType, max_list: int = 3) -> st.SearchStrategy[Any]:
    if isinstance(ftype, schema.UInt | schema.Int):
        return st.integers(ftype.minimum, ftype.maximum)
    if isinstance(ftype, schema.Enum):
        return st.sampled_from(list(ftype.enum_class))
    if isinstance(ftype, schema.Str):
        limit = ftype.max_length if ftype.max_length is not None else 64
        return st.text(max_size=limit).filter(
            lambda s: ftype.min_length <= len(s.encode()) <= limit
        )
    if isinstance(ftype, schema.Octets):
        limit = ftype.max_length if ftype.max_length is not None else 64
        return st.binary(min_size=ftype.min_length, max_size=max(ftype.min_length, min(limit, 64)))
    if isinstance(ftype, schema.List):
        upper = max_list if ftype.max_length is None else min(max_list, ftype.max_length)
        return st.lists(for_type(ftype.item, max_list), min_size=ftype.min_length, max_size=upper)
    if isinstance(ftype, schema.StructType):
        return for_struct(ftype.struct_class, max_list)
    if ftype is schema.BOOL:
        return st.booleans()
    raise NotImplementedError(ftype)


def for_struct(cls: type[schema.Struct], max_list: int = 3) -> st.SearchStrategy[Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in cls.FIELDS:
        value = for_type(spec.type, max_list)
        if spec.nullable:
            value = st.one_of(st.just(schema.NULL), value)
        if spec.optional:
            value = st.one_of(st.none(), value)
        fields[spec.name] = value
    return st.builds(cls, **fields)
