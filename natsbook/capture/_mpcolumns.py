"""MessagePack telemetry straight into columns: numpy reads the bytes, no Python value per row.

The common case of ``to_frame(decode="msgpack")``: every payload a map with short text keys
(fixstr) whose values are nil, booleans, integers, floats, short strings (fixstr, str8) or
such maps again. For a batch where every payload is exactly that, the payloads are read in
lock step by numpy (one step per map entry, all rows at once) and each column is built from
typed arrays, to exactly the columns ``value_columns`` gives for the decoded objects (names,
order, dtypes, values). Anything else anywhere in the batch - another type, an empty map as a
value, a repeated key, a string that is not UTF-8, a payload that is not exactly one value,
an empty payload, a column whose cells have mixed types - and `columns` returns None: the
caller takes the general path. The property tests in ``tests/test_binary_fastpath.py`` hold
this reading to the general path.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pandas as pd
import pyarrow as pa

from ._jsondecode import column_name, flatten_row

__all__ = ["columns"]

_PAD = 64  # bytes after the last payload: no read starting inside a payload goes further
_MAX_DEPTH = 8  # deeper maps: the general path
_MAX_COLUMNS = 512
_NIL, _BOOL, _INT, _FLOAT, _STR = range(5)


class _Refuse(Exception):
    """The batch is not of the narrow kind read here."""


class _Column:
    __slots__ = ("floats", "ints", "kind", "lens", "neg", "rows", "starts")

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.ints: list[np.ndarray] = []  # uint64 bits (two's complement for negatives)
        self.neg: list[np.ndarray] = []
        self.floats: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []  # strings: byte offset and length in the data
        self.lens: list[np.ndarray] = []


def _be(data: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Big-endian unsigned integers of `width` (1, 2, 4, 8) bytes at `at`, as uint64."""
    mat = data[at[:, None] + np.arange(width)]
    return mat.view(f">u{width}")[:, 0].astype(np.uint64)


class _Reader:
    def __init__(self, data: np.ndarray, ends: np.ndarray) -> None:
        self.data = data
        self.ends = ends
        self.cols: dict[tuple[str, ...], _Column] = {}
        self.key_ids: dict[str, int] = {}

    def _check(self, rows: np.ndarray, pos: np.ndarray) -> None:
        if len(pos) and (pos > self.ends[rows]).any():
            raise _Refuse

    def _keys(self, rows: np.ndarray, pos: np.ndarray) -> tuple[list[str], np.ndarray,
                                                                  np.ndarray]:
        """The fixstr key at each `pos`: the distinct keys, each row's index into them, and the
        position after the key."""
        data = self.data
        t = data[pos]
        if ((t & 0xE0) != 0xA0).any():
            raise _Refuse
        klen = (t & 0x1F).astype(np.int64)
        pos = pos + 1
        self._check(rows, pos + klen)
        width = int(klen.max())
        mat = data[pos[:, None] + np.arange(width)] if width else np.zeros((len(pos), 0),
                                                                            np.uint8)
        if width:
            mat[np.arange(width) >= klen[:, None]] = 0
        # Length and bytes of each key as whole uint64 words: equal keys, equal words.
        words = (width + 8) // 8
        full = np.zeros((len(pos), 8 * words), dtype=np.uint8)
        full[:, 0] = klen
        full[:, 1:1 + width] = mat
        packed = full.view(np.uint64)
        same = (packed == packed[0]).all(axis=1)
        if same.all():
            uniq, inverse = full[:1], np.zeros(len(pos), dtype=np.int64)
        else:
            view = full.view(np.dtype((np.void, 8 * words)))[:, 0]
            _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
            uniq = full[first]
        try:
            keys = [bytes(u[1:1 + u[0]]).decode("utf-8") for u in uniq]
        except UnicodeDecodeError:
            raise _Refuse from None
        return keys, inverse.reshape(-1), pos + klen

    def read_map(self, rows: np.ndarray, pos: np.ndarray, path: tuple[str, ...],
                 depth: int) -> np.ndarray:
        """Read the fixmap at each `pos` (rows `rows`); the position after it."""
        if depth > _MAX_DEPTH:
            raise _Refuse
        t = self.data[pos]
        if ((t & 0xF0) != 0x80).any():
            raise _Refuse
        count = (t & 0x0F).astype(np.int64)
        if depth > 1 and not count.all():  # an empty map as a value: an object cell
            raise _Refuse
        pos = pos + 1
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        for j in range(int(count.max(initial=0))):
            act = np.flatnonzero(count > j)
            r, p = rows[act], pos[act]
            keys, inverse, p = self._keys(r, p)
            ids = np.array([self.key_ids.setdefault(k, len(self.key_ids)) for k in keys],
                           dtype=np.int64)
            seen.append((r, ids[inverse]))
            t = self.data[p]
            is_map = (t & 0xF0) == 0x80
            for k_i, key in enumerate(keys):
                sel = inverse == k_i
                sub = sel & is_map
                if sub.any():
                    idx = np.flatnonzero(sub)
                    p[idx] = self.read_map(r[idx], p[idx], (*path, key), depth + 1)
                leaf = sel & ~is_map
                if leaf.any():
                    idx = np.flatnonzero(leaf)
                    p[idx] = self._leaf(r[idx], p[idx], (*path, key))
            self._check(r, p)
            pos[act] = p
        if len(seen) > 1:  # a key twice in one map: the general path (the last one wins)
            if len(self.key_ids) <= 64:  # each row's keys as bits
                bits = np.zeros(int(rows.max()) + 1, dtype=np.uint64)
                for r, k in seen:
                    b = np.left_shift(np.uint64(1), k.astype(np.uint64))
                    if (bits[r] & b).any():
                        raise _Refuse
                    bits[r] |= b
            else:
                both = np.concatenate([r * (len(self.key_ids) + 1) + k for r, k in seen])
                both.sort()
                if (both[1:] == both[:-1]).any():
                    raise _Refuse
        return pos

    def _leaf(self, rows: np.ndarray, pos: np.ndarray, path: tuple[str, ...]) -> np.ndarray:
        data = self.data
        t = data[pos].astype(np.int64)
        n = len(pos)
        kind = np.full(n, -1, dtype=np.int8)
        size = np.zeros(n, dtype=np.int64)
        ints = np.zeros(n, dtype=np.uint64)
        neg = np.zeros(n, dtype=bool)
        floats = np.zeros(n, dtype=np.float64)
        slen = np.zeros(n, dtype=np.int64)
        sstart = np.zeros(n, dtype=np.int64)

        m = t < 0x80  # positive fixint
        kind[m], size[m], ints[m] = _INT, 1, t[m].astype(np.uint64)
        m = t >= 0xE0  # negative fixint
        kind[m], size[m], neg[m] = _INT, 1, True
        ints[m] = (t[m] - 256).astype(np.int64).view(np.uint64)
        m = t == 0xC0
        kind[m], size[m] = _NIL, 1
        m = (t == 0xC2) | (t == 0xC3)
        kind[m], size[m], ints[m] = _BOOL, 1, (t[m] == 0xC3).astype(np.uint64)
        for code, width in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            m = t == code
            if m.any():
                kind[m], size[m] = _INT, 1 + width
                ints[m] = _be(data, pos[m] + 1, width)
        for code, width in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            m = t == code
            if m.any():
                kind[m], size[m] = _INT, 1 + width
                raw = _be(data, pos[m] + 1, width)
                if width < 8:  # sign-extend
                    top = np.uint64(1 << (8 * width - 1))
                    raw = np.where(raw & top, raw - (top << np.uint64(1)), raw)
                ints[m] = raw
                neg[m] = (raw >> np.uint64(63)).astype(bool)
        m = t == 0xCA
        if m.any():
            kind[m], size[m] = _FLOAT, 5
            floats[m] = _be(data, pos[m] + 1, 4).astype(np.uint32).view(np.float32)
        m = t == 0xCB
        if m.any():
            kind[m], size[m] = _FLOAT, 9
            floats[m] = _be(data, pos[m] + 1, 8).view(np.float64)
        m = (t & 0xE0) == 0xA0  # fixstr
        kind[m], sstart[m], slen[m] = _STR, pos[m] + 1, t[m] & 0x1F
        m = t == 0xD9  # str8
        if m.any():
            kind[m], sstart[m], slen[m] = _STR, pos[m] + 2, data[pos[m] + 1]
        s = kind == _STR
        size[s] = sstart[s] - pos[s] + slen[s]
        if (kind < 0).any():
            raise _Refuse
        col = self.cols.get(path)
        if col is None:
            if len(self.cols) >= _MAX_COLUMNS:
                raise _Refuse
            col = self.cols[path] = _Column()
        col.rows.append(rows)
        col.kind.append(kind)
        col.ints.append(ints)
        col.neg.append(neg)
        col.floats.append(floats)
        col.starts.append(sstart[s])
        col.lens.append(slen[s])
        return pos + size


def _strings(data: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    idx = np.repeat(starts - offsets[:-1], lens) + np.arange(total)
    buf = data[idx]
    hi = np.flatnonzero(buf[:-1] == 0xED)
    if len(hi) and (buf[hi + 1] >= 0xA0).any():  # an encoded surrogate: not UTF-8
        raise _Refuse
    arr = pa.LargeStringArray.from_buffers(len(lens), pa.py_buffer(offsets),
                                           pa.py_buffer(buf.tobytes()))
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        raise _Refuse from None
    return arr


def _typed(data: np.ndarray, col: _Column, n: int) -> Any:
    """The column `typed_column` gives for these cells (None where missing)."""
    rows = np.concatenate(col.rows)
    kind = np.concatenate(col.kind)
    ints = np.concatenate(col.ints)
    neg = np.concatenate(col.neg)
    floats = np.concatenate(col.floats)
    present = np.zeros(n, dtype=bool)
    present[rows] = kind != _NIL
    nulls = not present.all()
    kinds = set(np.unique(kind).tolist()) - {_NIL}
    mask = ~present
    if kinds == {_INT}:
        big = ints.view(np.int64) < 0
        big &= ~neg
        if not big.any():
            vals = np.zeros(n, dtype=np.int64)
            vals[rows] = ints.view(np.int64)
            return pd.arrays.IntegerArray(vals, mask) if nulls else vals
        if neg.any():  # beyond int64 and negative: Python ints (the general path)
            raise _Refuse
        uvals = np.zeros(n, dtype=np.uint64)
        uvals[rows] = ints
        return pd.arrays.IntegerArray(uvals, mask) if nulls else uvals
    if kinds in ({_FLOAT}, {_INT, _FLOAT}):
        out = np.full(n, np.nan, dtype=np.float64)
        f = kind == _FLOAT
        out[rows[f]] = floats[f]
        i = kind == _INT
        if i.any():
            iv = ints[i]
            signed = iv.view(np.int64)
            if ((~neg[i] & (iv > np.uint64(1 << 53))).any()
                    or (neg[i] & (signed < -(1 << 53))).any()):
                raise _Refuse  # not exact as a float: an object column
            out[rows[i]] = signed.astype(np.float64)
        return out
    if kinds == {_BOOL}:
        flags = np.zeros(n, dtype=bool)
        flags[rows] = ints.astype(bool)
        return pd.arrays.BooleanArray(flags, mask) if nulls else flags
    if kinds == {_STR}:
        strs = _strings(data, np.concatenate(col.starts), np.concatenate(col.lens))
        take = np.full(n, -1, dtype=np.int64)
        take[rows[kind == _STR]] = np.arange(len(strs))
        idx = pa.array(take, mask=take < 0)
        return pd.Series(strs.take(idx), dtype="str")
    raise _Refuse  # only nulls, or mixed kinds: object columns (the general path)


def columns(col: pa.ChunkedArray | pa.Array) -> dict[str, Any] | None:
    """The columns of `value_columns` for a batch of MessagePack telemetry maps, or None
    when the batch is not of that narrow kind."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if n == 0 or arr.null_count or arr.type != pa.binary():
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
    offsets = offsets.astype(np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    if not (ends > starts).all():
        return None
    raw = arr.buffers()[2]
    data = np.concatenate([np.frombuffer(raw, dtype=np.uint8)[:int(offsets[-1])],
                           np.zeros(_PAD, dtype=np.uint8)])
    reader = _Reader(data, ends)
    try:
        end = reader.read_map(np.arange(n), starts.copy(), (), 1)
        if not np.array_equal(end, ends):
            return None
        cells = {column_name(path): (c, int(np.concatenate(c.rows).min()))
                 for path, c in reader.cols.items()}
        if len(cells) != len(reader.cols):
            return None
        built = {name: _typed(data, c, n) for name, (c, _) in cells.items()}
    except _Refuse:
        return None
    # Column order as the general path: by the first row holding the column, then by place
    # within that row.
    place: dict[int, dict[str, int]] = {}
    for r in {first for _, first in cells.values()}:
        flat: dict[str, Any] = {}
        flatten_row(msgpack.unpackb(data[starts[r]:ends[r]].tobytes(), raw=False), (), flat)
        place[r] = {name: i for i, name in enumerate(flat)}
    order = sorted(cells, key=lambda c: (cells[c][1], place[cells[c][1]][c]))
    out: dict[str, Any] = {name: built[name] for name in order}
    out["json_error"] = np.zeros(n, dtype=bool)
    return out
