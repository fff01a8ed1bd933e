"""The row version hash: the text an image's hash is taken of, and Arrow's route to it for whole projects."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Iterable, List, Mapping, Optional

import pyarrow as pa
import pyarrow.compute as pc


def _encode(text: str) -> bytes:
    """UTF-8, or for text with lone surrogates (valid JSON escapes, invalid UTF-8) UTF-8
    that passes them through, so such text hashes apart from any ordinary text."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


_HASH_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)
"""`json.dumps(..., ensure_ascii=False, sort_keys=True, default=str)` made once: the text a row's
hash is taken of. It must never change: a new text would make a new version of every image."""


def _hash_text(value: Any) -> str:
    """The text the hash of `value` is taken of."""
    return _HASH_ENCODER.encode(value)


def row_hash(image: Dict[str, Any], project_id: str, region: str) -> str:
    """Stable hash of everything the API said about an image, with its project and region."""
    return hashlib.blake2b(_encode(_hash_text([project_id, region, image])), digest_size=16).hexdigest()


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
"""Characters the hash text writes escaped, which the Arrow route below does not do."""


def plain_row_hashes(
    keys: Iterable[str], sent: Mapping[str, pa.Array], project_id: str, region: str
) -> Optional[List[str]]:
    """`row_hash` of every image of a project whose images all have the fields `keys`, the same
    text built by Arrow for all at once; or None unless each field is in `sent` (its values as
    sent: text or integers, with nulls) and no text needs escaping in JSON."""
    if not all(key in sent for key in keys):
        return None
    texts = [sent[key] for key in keys if pa.types.is_string(sent[key].type)]
    if texts and pc.any(pc.match_substring_regex(pa.chunked_array(texts), _NEEDS_ESCAPE)).as_py():
        return None
    pieces: List[Any] = [f"[{_hash_text(project_id)}, {_hash_text(region)}, {{"]
    for n, key in enumerate(sorted(keys)):
        values = sent[key]
        pieces.append(("" if n == 0 else ", ") + _hash_text(key) + ": ")
        if pa.types.is_string(values.type) and values.null_count == 0:
            pieces += ['"', values, '"']
            continue
        if pa.types.is_string(values.type):
            literal = pc.binary_join_element_wise('"', values, '"', "")
        else:
            literal = values.cast(pa.string())
        pieces.append(pc.fill_null(literal, "null") if values.null_count else literal)
    pieces.append("}]")
    merged: List[Any] = []
    for piece in pieces:  # adjacent text pieces as one
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    joined = pc.binary_join_element_wise(*merged, "").cast(pa.binary())
    blake2b = hashlib.blake2b
    return [blake2b(text, digest_size=16).hexdigest() for text in joined.to_pylist()]
