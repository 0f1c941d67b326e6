"""Mutation testing of the core with mutmut (slow; not part of CI).

Plants small bugs (mutants) in the wire codec, the engine, reconnect, the store, the frames
and the transport, runs the fast tests that exercise each mutated function against real
nats-servers, and prints the score per module and every mutant that survived.

    pip install -e '.[test,mutation]'
    python bench/mutation.py                       # every module below
    python bench/mutation.py _protocol _subjects   # a subset
    python bench/mutation.py --report-only         # re-print the last run's results

The run happens in a scratch copy (``build/mutation/``): mutmut rewrites the sources it
mutates, and the tree you work in stays untouched. Mutants listed in EQUIVALENT below change
no behaviour any test could see; each carries its reason and is left out of the score.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Module -> the layer folder it lives in.
LAYER = {"_subjects": "wire", "_msg": "wire", "_protocol": "wire", "_runs": "wire",
         "_frames": "capture",
         "_store": "capture", "_jsondecode": "capture", "_transport": "client",
         "_engine": "client", "_sendqueue": "client", "_reconnect": "client"}

#: Module -> the fast test files that pin its behaviour.
MODULES: dict[str, list[str]] = {
    "_subjects": ["tests/test_subjects.py", "tests/test_subject_errors.py"],
    "_msg": ["tests/test_msg.py", "tests/test_codec_exact.py", "tests/test_protocol.py"],
    "_protocol": ["tests/test_protocol.py", "tests/test_codec_exact.py",
                  "tests/test_promises.py", "tests/faults/test_fuzz_parser.py",
                  "tests/test_runs.py", "tests/test_bulk_window.py"],
    # The bulk run path: the fixed cases (test_runs_props.py holds the same to the reference
    # decoder with hypothesis, too slow per mutant).
    "_runs": ["tests/test_runs.py"],
    # test_decoding.py holds both JSON paths to the reference decoder too, but with 600
    # hypothesis examples (about a minute per mutant): test_frames_exact.py pins the same
    # contract on fixed batches in seconds.
    "_frames": ["tests/test_frames_exact.py", "tests/test_store.py"],
    "_jsondecode": ["tests/test_frames_exact.py"],
    "_store": ["tests/test_store_exact.py", "tests/test_store.py", "tests/test_runs.py"],
    # The client modules' exact tests come first: they kill most mutants in a second or two
    # (fake servers scripted in the test, or one real server); the rest pin what needs a real
    # server (TLS, WebSocket, restarts).
    "_transport": ["tests/test_transport_exact.py", "tests/test_auth_tls.py",
                   "tests/faults/test_auth_tls_failures.py", "tests/test_websocket.py"],
    "_engine": ["tests/test_engine_exact.py", "tests/test_engine_peers_exact.py",
                "tests/test_pubsub.py", "tests/test_promises.py"],
    # The send queue (split from _engine for issue 24; its EQUIVALENT entries still carry
    # _engine's names and numbers until the next mutation run re-derives them).
    "_sendqueue": ["tests/test_engine_exact.py", "tests/test_engine_peers_exact.py",
                   "tests/test_pubsub.py", "tests/test_promises.py"],
    "_reconnect": ["tests/test_reconnect_exact.py", "tests/test_reconnect_pool_exact.py",
                   "tests/test_reconnect_reasons.py", "tests/test_reconnect.py",
                   "tests/test_promises.py"],
}

_CASE = "codec names are case-insensitive: 'UTF-8' is 'utf-8'"
_SENTINEL = ("a start-up sentinel of the parser's line cache, never read while the cache "
             "is empty (cache_len < 0)")
_PERF = "a fast-path choice only: the output is the same"
_UNREAD = "an initial value the loop overwrites before reading it"
_CACHED_OK = (_PERF + " (the cached path is also taken while the probe counts down; the cache "
              "holds a line seen in this chunk and is checked byte for byte)")
_NEVER = _PERF + " (the cache never matches: every line takes the regex path)"
_THRESHOLD = (_PERF + " (runs of a single frame also take the run path, which decodes them "
              "the same)")
_RAISING = "the line cache reset on the way to raising ProtocolError: never read again"
_PARTS = ("only how an incomplete frame is buffered (joined parts or one rest): the frames "
          "parsed are the same")
_CAP = "natsbook.capture."
_FEED = "natsbook.wire._protocol.xǁParserǁfeed__mutmut_"
_STORE = "natsbook.capture._store.xǁCaptureStoreǁ"
_JSON = "natsbook.capture._jsondecode."
_FRAMES = "natsbook.capture._frames."
_TRIMMED = ("the trim runs only when excess < the head's rows, so the trimmed head keeps a row: "
            "the empty-slice branch never runs")
_BATCH_SCHEMA = "the sealed batches carry SCHEMA already: the schema taken from them is the same"
_ALL_NONE = ("the column built from values when none is set: the parser gives None (never b'') "
             "for a missing reply or header block, and all-None values make the same nulls")
_NULLS = "pa.nulls without a type: RecordBatch.from_arrays(schema=SCHEMA) casts it to the field's"
_MSG_UNSEEN = "the error's text is never seen: parse_careful turns the ValueError into ERROR"
_GROUPED = (_PERF + " (objects are grouped by their keys instead of taken as one shape: the "
            "same columns)")
_INFER_NP = "np.array infers int64 from Python ints within int64"
_INFER_NA = "pd.array infers Int64 / UInt64 from these ints with None"
_STRICT = "the zipped sequences always have the same length: strict= only checks that"
_STR = "dtype='str' makes the same column from string or large_string"
_INFER_STR = "pandas infers the str dtype from a list of str and None"
_TZ_LABEL = ("the scalar's time zone is only a label: Arrow compares timestamps by instant")
_HDR_CACHE = _PERF + " (a header block parsed again instead of taken from the cache: the same dict)"
_COPY = "copy= only decides whether pandas copies the values: the frame is the same"
_BOTH_PATHS = ("the careful path instead of the fast one (or one step of it): the tests hold both "
               "to the reference and to each other")
_OTHERS = (_PERF + " (the rows that are neither object nor marker are looked for more often: "
           "there are none when the count says so)")
_PART_SCHEMA = "part files are written with SCHEMA: the schema stored in them is the same"
#: The bulk run path (wire/_runs.py). Most of its equivalent mutants only decide where a run
#: is looked for, how far it reaches, or read values of frames already refused: any frame a run
#: does not take goes through the per-frame parser, which gives the same rows.
_RUNS = "natsbook.wire._runs.x"
_FIND = _RUNS + "__find__mutmut_"
_FIND_RUN = _RUNS + "_find_run__mutmut_"
_SHORTER = _PERF + " (a run taken shorter, later or in smaller pieces: the per-frame parser " \
    "takes the frames it leaves, with the same rows)"
_REFUSED = "an index or value read for frames already refused (masked off): never used"
_BULK = "natsbook.wire._protocol.x__bulk_msgs__mutmut_"
_CLEAN = _PERF + (" (the window is judged not clean: every line is checked for tabs, CRs and "
                  "LFs on its own)")
_RB = "natsbook.capture._store.x__run_batch__mutmut_"
_EQ_RUNS: dict[str, str] = {
    "natsbook.capture._store.x_text_array__mutmut_10": "the fallback holds at least one str (it "
        "runs on invalid UTF-8): pa.array infers string",
    "natsbook.capture._store.x__seal__mutmut_70": "count= is only np.fromiter's preallocation "
        "hint",
    **{_RB + str(n): "np.arange of Python ints is int64 here" for n in (17, 21)},
    **{_RB + str(n): "pa.array infers int64 from an int64 numpy array" for n in (33, 35)},
    **{_RB + str(n): "np.full of a Python int (ns since the epoch) is int64 already"
       for n in (38, 41)},
    **{_RB + str(n): _NULLS for n in (54, 56, 58, 60)},
    _STORE + "append__mutmut_4": _PERF + " (a bulk run taken row by row: the same rows)",
    _STORE + "_append_run__mutmut_5": _PERF + " (the open rows sealed one row later: the same "
        "rows)",
    _STORE + "_enforce_locked__mutmut_28": _TRIMMED,
    _STORE + "_enforce_locked__mutmut_33": _TRIMMED,
    _STORE + "table__mutmut_16": "pa.concat_tables of one table is that table",
    _STORE + "table__mutmut_18": "pa.concat_tables of one table is that table",
    **{_BULK + str(n): "typing.cast returns its argument: the type is for mypy only"
       for n in (17, 21, 22, 23)},
    **{_BULK + str(n): _CLEAN for n in (46, 51, 54, 57)},
    _BULK + "58": "last_sid sentinel None: still never equal to a sid, so last_list is set "
        "first",
    _BULK + "59": "last_sid sentinel b'XXXX': natsbook's sids are decimal numbers, never 'XXXX'",
    _BULK + "60": "last_list sentinel None: only read after last_sid matched, which sets it",
    **{_BULK + str(n): _STRICT for n in (65, 68, 69)},
    **{f"{_RUNS}ǁRunColumnsǁrows__mutmut_{n}": _STRICT for n in (4, 7, 10, 26, 31, 40)},
    _RUNS + "ǁMsgRunǁappend__mutmut_1": _PERF + " (every row appended as its own list part: "
        "the same rows in the same order)",
    _RUNS + "ǁMsgRunǁappend__mutmut_2": _PERF + " (every row appended as its own list part: "
        "the same rows in the same order)",
    _RUNS + "ǁMsgRunǁappend__mutmut_3": "append on a MsgRun without parts never happens: the "
        "parser makes one only to add a run's columns to it",
    **{_FIND_RUN + str(n): "reads never come near 2 GiB (recv() takes 1 MiB; a frame is at "
       "most HARD_MAX_FRAME, 256 MiB)" for n in (1, 3, 4)},
    **{_FIND_RUN + str(n): _SHORTER for n in (5, 6, 10, 18, 19, 21, 24, 27, 31)},
    **{_FIND + str(n): _SHORTER for n in (12, 42, 91, 154, 196, 247, 284, 347)},
    _FIND + "59": _REFUSED,
    _FIND + "64": "the clip binds only for a line starting in the last 2 bytes of a read, never "
        "a complete frame (refused anyway)",
    **{_FIND + str(n): "the span searched for spaces, tabs and LFs still holds every line of "
       "the run" for n in (87, 88, 92)},
    _FIND + "129": "k from the second frame: when it differs from the first's, the first frame "
        "is refused and no run is taken, as before",
    _FIND + "146": _REFUSED,
    _FIND + "153": "the clip never binds: refused frames read from index 0, accepted frames' "
        "spaces are in range",
    _FIND + "186": "when the first frame is refused the run is empty anyway (take = 0)",
    **{_FIND + str(n): "float64 holds numbers of up to 12 digits exactly" for n in (200, 202,
                                                                                     214)},
    _FIND + "209": "a 13th digit is read only for frames refused by dlen <= 12",
    _FIND + "222": _REFUSED,
    _FIND + "272": _REFUSED,
    _FIND + "275": "sids compared with the second frame's: a run needs its first two frames of "
        "one sid either way",
    _FIND + "293": "a 6-segment layout for plain frames leaves segment 3 unset, and it is never "
        "read: only segments 1 and k-2 are taken",
}


_TR = "natsbook.core._transport."
_EN = "natsbook.core._ioloop.xǁIOLoopǁ"
_RE = "natsbook.core._reconnect.xǁReconnectingǁ"
_REWRAPPED = ("the url of a plain ConnectError from handshake() is never seen: connect() raises a "
              "new one from its text (with the pool's URL), the reconnect loop only logs the "
              "text; only AuthError, TLSError and WebSocketUpgradeError leave as they are")
_DIRECT = (_PERF + " (a frame sent by the I/O thread instead of the caller, or the other way "
           "round; the order is kept either way)")
_REASON_SET = ("the fallback text is never used: _set_closed always stores a reason "
               "(close() passes 'close() was called')")
_WAIT_LOOP = ("the wait loop below tests the same condition (connected and over pending_size) "
              "itself: the if only decides whether a deadline is computed")
_READ_MORE = (_PERF + " (how many reads _read makes before it returns; the I/O loop reads "
              "what is left, and TLS/WebSocket leftovers via _pending, on its next turn)")
_SET_BEFORE_READ = "an initial value _adopt or the first connect sets before anything reads it"
_BATCH_ONLY = "only read while _inflight holds a batch, and always set together with it"
_FALSY = "None and '' are both falsy wherever this is read"
_SELECTOR = _PERF + (" (an extra or a skipped selector.modify on the first turn; the next "
                     "one fixes it)")
_RECHECK = ("want_write is computed again, right, in the block that follows whenever it is "
            "false here: at most an extra wake-up byte")
_LAME_TEXT = ("the text of the lame-duck _Lost is never seen: _run always moves, and the move's "
              "outcome gives the reason")
_CLOSED_UNUSED = ("_io_loop returns only once _stop is set, and _run then stops without using "
                  "the reason")
_ONE_POOL = "a pool of one server rotates to itself"
_INHERIT = ("daemon=None (or no daemon=): a thread inherits daemon from the thread that starts "
            "it, here the I/O thread, a daemon")
_WAKE = (_PERF + " (how often the wake-up pipe is written; the I/O thread looks at the queue "
         "before it sleeps)")
_NO_PONG_IN_REST = ("the bytes behind the handshake's PONG never hold another PONG (the "
                    "server answers the handshake's one PING once): any/none gives False")
#: Mutants that cannot change observable behaviour, with the reason (kept out of the score).
#: Keyed by mutmut's names, which number the mutants of one function in source order: after
#: editing a function, re-check its entries (`mutmut show NAME` in build/mutation).
EQUIVALENT: dict[str, str] = {
    "natsbook.wire._msg.xǁMsgǁfrom_raw__mutmut_34": _CASE,
    "natsbook.wire._msg.xǁMsgǁfrom_raw__mutmut_44": _CASE,
    "natsbook.wire._msg.xǁMsgǁtext__mutmut_3": _CASE,
    "natsbook.wire._msg.x_encode_payload__mutmut_4": _CASE,
    "natsbook.wire._protocol.x_parse_headers__mutmut_7": _CASE,
    "natsbook.wire._protocol.xǁParserǁ_control__mutmut_28": _CASE,
    "natsbook.wire._protocol.x_decode_info__mutmut_11":
        "line[5:] drops the space after INFO, which orjson skips anyway",
    "natsbook.wire._protocol.x_parse_headers__mutmut_25":
        "first[9:] drops the space after NATS/1.0, which .strip() drops anyway",
    "natsbook.wire._protocol.xǁParserǁ_control__mutmut_3":
        "head = line[:6]: every check after it looks at 5 bytes or fewer",
    "natsbook.wire._protocol.xǁParserǁ_control__mutmut_26":
        "line[5:] drops the space after -ERR, which .strip() drops anyway",
    "natsbook.wire._protocol.xǁParserǁreset__mutmut_3":
        "_parts = None: falsy like [], and reassigned before any other use",
    _FEED + "8":
        "_parts = None after the join: falsy like [], reassigned before any other use",
    _FEED + "18":
        "last_sid sentinel None: still never equal to a sid, so last_list is set first",
    _FEED + "19":
        "last_sid sentinel b'XXXX': natsbook's sids are decimal numbers, never 'XXXX'",
    _FEED + "20":
        "last_list sentinel None: only read after last_sid matched, which sets it",
    _FEED + "27": _SENTINEL,
    _FEED + "28": _SENTINEL,
    _FEED + "31": "cache_len -2: still 'no cached line' (< 0)",
    _FEED + "32": _SENTINEL,
    _FEED + "33": _SENTINEL,
    _FEED + "34": _SENTINEL,
    _FEED + "35": _SENTINEL,
    "natsbook.wire._protocol.xǁParserǁ__init____mutmut_3": "_parts = None: falsy like [], "
        "reassigned before any other use",
    "natsbook.wire._protocol.xǁParserǁ__init____mutmut_6": "_need is only read while _parts holds "
        "data, and is set together with it",
    _FEED + "37": "countdown None: 'not None' and 'if None' "
        "behave as for 0",
    _FEED + "38": _PERF + " (the first line is cached one "
        "message later)",
    _FEED + "39": _UNREAD,
    _FEED + "40": _UNREAD,
    _FEED + "41": _UNREAD,
    _FEED + "42": _UNREAD,
    _FEED + "43": _UNREAD,
    _FEED + "45": "pos <= n: at pos == n no rule matches "
        "and the loop breaks as before",
    _FEED + "49": _CACHED_OK,
    _FEED + "51": "cache_len >= 1: a cached line is never "
        "empty",
    _FEED + "57": _NEVER,
    _FEED + "59": _NEVER,
    _FEED + "60": _NEVER,
    _FEED + "77": _THRESHOLD,
    _FEED + "78": _THRESHOLD,
    _FEED + "79": _THRESHOLD,
    _FEED + "80": _THRESHOLD,
    _FEED + "81": "runs are whole frames, so '> len + 1' "
        "and '> len' pick the same runs",
    _FEED + "36": _SENTINEL,
    _FEED + "66": _PERF + " (no run path: every frame "
        "takes the per-frame path)",
    _FEED + "70": _PERF + " (a run matched from the chunk's "
        "start ends where the run from pos ends, or is refused as too short)",
    _FEED + "115": "hdr_len None instead of 0 on the MSG "
        "path: both falsy wherever it is read",
    "natsbook.wire._protocol.xǁParserǁ__init____mutmut_7": "_need is only read while _parts holds "
        "data, and is set together with it",
    _FEED + "50": "cache_len > 0: a cached line is never "
        "empty",
    _FEED + "95": "the run path starts only on a line parsed "
        "earlier in the same chunk, which filed its sid in groups: this branch never runs",
    _FEED + "162": "hdr_len None instead of 0 on the per-line MSG path: "
        "both falsy where read",
    _FEED + "194": _RAISING,
    _FEED + "195": _RAISING,
    _FEED + "196": _RAISING,
    _FEED + "210": _PERF + " (probes on the next message)",
    _FEED + "231": _PARTS +
        " (joins 4 bytes early, then waits in _rest)",
    _FEED + "233": _PARTS,
    _FEED + "234": _PARTS,
    _FEED + "235": _PARTS,
    _FEED + "236": _PARTS,
    _FEED + "240": "_rest None: the end of feed() stores the unparsed tail in _rest "
        "anyway",
    _FEED + "273": "pos <= n: at pos == n it stores b'' in _rest, "
        "as before",
    _FEED + "137": _PERF + " (probes on the next message)",
    _JSON + "x__reject_constant__mutmut_1": _MSG_UNSEEN,
    _JSON + "x__parse_float__mutmut_4": _MSG_UNSEEN,
    _JSON + "x_depth_ok__mutmut_10": "break for continue on a "
        "scalar: only the root can be one (only containers are pushed): the stack is empty",
    _JSON + "x__strings_ok__mutmut_3": _CASE,
    _JSON + "x__loads_one__mutmut_1": _PERF + " (every row of "
        "a batch orjson refused takes the careful parser: the same values)",
    _JSON + "x__big_floats__mutmut_6": _PERF + " (a column of "
        "exactly float, int and None takes the per-value scan: the same rows)",
    _JSON + "x__collect__mutmut_12": _GROUPED,
    _JSON + "x__collect__mutmut_15": _GROUPED,
    _JSON + "x__collect__mutmut_21": _GROUPED,
    _JSON + "x__collect__mutmut_54": _PERF + " (the group's columns "
        "are cut again, the same)",
    _JSON + "x_typed_column__mutmut_9": "dropping None from ints that hold none: the same",
    _JSON + "x_typed_column__mutmut_27": _INFER_NA,
    _JSON + "x_typed_column__mutmut_29": _INFER_NA,
    _JSON + "x_typed_column__mutmut_47": _INFER_NA,
    _JSON + "x_typed_column__mutmut_49": _INFER_NA,
    _JSON + "x_typed_column__mutmut_34": _INFER_NP,
    _JSON + "x_typed_column__mutmut_36": _INFER_NP,
    _JSON + "x__assemble__mutmut_1": _PERF + " (a lone chunk "
        "is placed row by row, the same; several never start with one of n rows)",
    _JSON + "x__assemble__mutmut_2": _PERF + " (a lone chunk "
        "is placed row by row, the same)",
    _JSON + "x__collect__mutmut_29": _STRICT,
    _JSON + "x__collect__mutmut_33": _STRICT,
    _JSON + "x__collect__mutmut_38": _STRICT,
    _JSON + "x__collect__mutmut_65": _STRICT,
    _JSON + "x__collect__mutmut_68": _STRICT,
    _JSON + "x__collect__mutmut_69": _STRICT,
    _JSON + "x__collect__mutmut_91": _STRICT,
    _JSON + "x__collect__mutmut_94": _STRICT,
    _JSON + "x__collect__mutmut_95": _STRICT,
    _JSON + "x__assemble__mutmut_10": _STRICT,
    _JSON + "x__assemble__mutmut_13": _STRICT,
    _JSON + "x__assemble__mutmut_14": _STRICT,
    _JSON + "x_parse_careful__mutmut_14": _CASE,
    _JSON + "x_parse_payloads__mutmut_1": "the default only serves "
        "_choose, which counts objects: both paths find the same ones",
    _JSON + "x_parse_payloads__mutmut_18": "zero_copy_only=None is falsy like False",
    _JSON + "x_typed_column__mutmut_73": _INFER_NP,
    _JSON + "x_typed_column__mutmut_75": _INFER_NP,
    _JSON + "x_typed_column__mutmut_87": _INFER_NP,
    _JSON + "x_typed_column__mutmut_89": _INFER_NP,
    _JSON + "x_typed_column__mutmut_81": _INFER_NA,
    _JSON + "x_typed_column__mutmut_83": _INFER_NA,
    _JSON + "x_typed_column__mutmut_92": "pandas infers the str dtype from an Arrow string array",
    _JSON + "x_typed_column__mutmut_94": "pandas infers the str dtype from an Arrow string array",
    _JSON + "x_typed_column__mutmut_96": _STR,
    _JSON + "x_typed_column__mutmut_98": _STR,
    _JSON + "x__cells__mutmut_1": _PERF + " (objects picked row by row: the same)",
    _JSON + "x__cells__mutmut_2": _PERF + " (objects picked row by row: the same)",
    _JSON + "x__cells__mutmut_35": _STRICT,
    _JSON + "x__cells__mutmut_38": _STRICT,
    _JSON + "x__cells__mutmut_39": _STRICT,
    _JSON + "x_decode_json__mutmut_1": _BOTH_PATHS,
    _JSON + "x_decode_json__mutmut_5": _BOTH_PATHS,
    _JSON + "x_decode_json__mutmut_29": _BOTH_PATHS,
    _JSON + "x_decode_json__mutmut_47": _BOTH_PATHS,
    _JSON + "x_decode_json__mutmut_84": "count= is only np.fromiter's preallocation hint",
    _JSON + "x_decode_json__mutmut_16": _OTHERS,
    _JSON + "x_decode_json__mutmut_21": _OTHERS,
    _JSON + "x_decode_json__mutmut_22": _OTHERS,
    _JSON + "x_decode_json__mutmut_23": _OTHERS,
    _JSON + "x_decode_json__mutmut_24": _OTHERS,
    _JSON + "x_decode_json__mutmut_67": _PERF + " (json_error computed row by row: all False when "
        "every row is an object)",
    _FRAMES + "x_filter_table__mutmut_26": "since=None read as NaT, "
        "whose value is the smallest int64: every row passes",
    _FRAMES + "x_filter_table__mutmut_32": "a naive Timestamp's "
        "value already counts from the UTC epoch",
    _FRAMES + "x_filter_table__mutmut_34": _CASE,
    _FRAMES + "x_filter_table__mutmut_46": _TZ_LABEL,
    _FRAMES + "x_filter_table__mutmut_47": _TZ_LABEL,
    _FRAMES + "x__headers_column__mutmut_8": _HDR_CACHE,
    _FRAMES + "x__headers_column__mutmut_9": _HDR_CACHE,
    _FRAMES + "x__headers_column__mutmut_35": _HDR_CACHE,
    _FRAMES + "x__headers_column__mutmut_36": _HDR_CACHE,
    _FRAMES + "x__headers_column__mutmut_37": _HDR_CACHE,
    _FRAMES + "x__decode_text__mutmut_2": _COPY,
    _FRAMES + "x__decode_text__mutmut_4": _COPY,
    _FRAMES + "x__decode_text__mutmut_6": _COPY,
    _FRAMES + "x__decode_text__mutmut_8": _INFER_STR,
    _FRAMES + "x__decode_text__mutmut_10": _INFER_STR,
    _FRAMES + "x__decode_text__mutmut_19": _CASE,
    _FRAMES + "x__choose__mutmut_27": "to_frame decodes any mode other than bytes and text as json",
    _FRAMES + "x_to_frame__mutmut_3": _BOTH_PATHS,
    _FRAMES + "x_to_frame__mutmut_74": _BOTH_PATHS,
    _FRAMES + "x_to_frame__mutmut_76": _BOTH_PATHS,
    _FRAMES + "x_to_frame__mutmut_38": "a list of dicts and None makes an object Series anyway",
    _FRAMES + "x_to_frame__mutmut_40": "a list of dicts and None makes an object Series anyway",
    _FRAMES + "x_to_frame__mutmut_60": _COPY,
    _FRAMES + "x_to_frame__mutmut_62": _COPY,
    _FRAMES + "x_to_frame__mutmut_64": _COPY,
    _CAP + "_store.x_text_array__mutmut_3": "pa.array infers binary from bytes (an all-None list "
        "casts to the same null strings)",
    _CAP + "_store.x_text_array__mutmut_5": "pa.array infers binary from bytes (an all-None list "
        "casts to the same null strings)",
    _CAP + "_store.x_text_array__mutmut_8": "the fallback holds at least one str (it runs on "
        "invalid UTF-8): pa.array infers string",
    "natsbook.capture._store.x_text_array__mutmut_19": _CASE,
    "natsbook.capture._store.x__seal__mutmut_28": _ALL_NONE,
    "natsbook.capture._store.x__seal__mutmut_37": _ALL_NONE,
    "natsbook.capture._store.x__seal__mutmut_32": _NULLS,
    "natsbook.capture._store.x__seal__mutmut_34": _NULLS,
    "natsbook.capture._store.x__seal__mutmut_39": _NULLS.replace("pa.nulls", "pa.array of bytes"),
    "natsbook.capture._store.x__seal__mutmut_41": _NULLS.replace("pa.nulls", "pa.array of bytes"),
    "natsbook.capture._store.x__seal__mutmut_44": _NULLS,
    "natsbook.capture._store.x__seal__mutmut_46": _NULLS,
    _CAP + "_store.x__seal__mutmut_52": "np.full of a Python int (ns since the epoch) is int64 "
        "already",
    _CAP + "_store.x__seal__mutmut_55": "np.full of a Python int (ns since the epoch) is int64 "
        "already",
    "natsbook.capture._store.x__seal__mutmut_78": "count= is only np.fromiter's preallocation hint",
    "natsbook.capture._store.x__seal__mutmut_87": "pa.array infers int64 from an int64 numpy array",
    _CAP + "_store.x__seal__mutmut_95": "payloads are bytes (b'' when empty): pa.array infers "
        "binary",
    _CAP + "_store.x__seal__mutmut_97": "payloads are bytes (b'' when empty): pa.array infers "
        "binary",
    _CAP + "_store.xǁCaptureBudgetǁenforce__mutmut_3": "early return at used < max_bytes: at "
        "used == max_bytes the loop below (sum > max_bytes) evicts nothing either",
    _STORE + "_enforce_locked__mutmut_5": "at exactly max_rows the excess is 0: the head is "
        "copied whole and nothing is evicted",
    _STORE + "_enforce_locked__mutmut_12": "return instead of break: nothing follows the loop",
    _STORE + "_enforce_locked__mutmut_43": "return instead of break: nothing follows the loop",
    _STORE + "_enforce_locked__mutmut_26": _TRIMMED,
    _STORE + "_enforce_locked__mutmut_29": _TRIMMED,
    _STORE + "_enforce_locked__mutmut_30": _TRIMMED,
    _STORE + "_enforce_locked__mutmut_31": _TRIMMED,
    _STORE + "_enforce_locked__mutmut_32": _TRIMMED,
    _STORE + "_head_time__mutmut_6": "a sealed batch is never empty: the 0-row branch never runs",
    _STORE + "_spill_locked__mutmut_5": _BATCH_SCHEMA,
    _STORE + "_spill_locked__mutmut_7": _BATCH_SCHEMA,
    _STORE + "_spill_locked__mutmut_20": "'ZSTD' and 'zstd' name the same Parquet codec",
    _STORE + "table__mutmut_7": _PART_SCHEMA,
    _STORE + "table__mutmut_9": _PART_SCHEMA,
    _TR + "x__check_seed__mutmut_5": "the nonce of the seed check is arbitrary: a usable seed "
        "signs any text",
    _TR + "x__check_seed__mutmut_6": "the nonce of the seed check is arbitrary: a usable seed "
        "signs any text",
    _TR + "x__sign__mutmut_15": "rstrip(b'XX=XX') also strips X, but a 64-byte signature's "
        "last base64 character encodes 2 bits (A, Q, g or w), never X",
    _TR + "x__recv_line__mutmut_26": "the read size only: the same bytes arrive",
    _TR + "x__upgrade__mutmut_15": _REWRAPPED,
    _TR + "x__upgrade__mutmut_17": _REWRAPPED,
    _TR + "x__upgrade__mutmut_25": "typing.cast does nothing at run time",
    _TR + "x_handshake__mutmut_1": "every caller passes echo= itself",
    _TR + "x_handshake__mutmut_11": _REWRAPPED,
    _TR + "x_handshake__mutmut_13": _REWRAPPED,
    _TR + "x_handshake__mutmut_17": _REWRAPPED,
    _TR + "x_handshake__mutmut_19": _REWRAPPED,
    _TR + "x_handshake__mutmut_105": _REWRAPPED,
    _TR + "x_handshake__mutmut_107": _REWRAPPED,
    _TR + "x_handshake__mutmut_252": _REWRAPPED,
    _TR + "x_handshake__mutmut_254": _REWRAPPED,
    _TR + "x_handshake__mutmut_256": _REWRAPPED,
    _TR + "x_handshake__mutmut_258": _REWRAPPED,
    _TR + "x_handshake__mutmut_279": "line[5:] drops the space after -ERR, which .strip() drops "
        "anyway",
    _TR + "x_handshake__mutmut_281": _CASE,
    _TR + "x_handshake__mutmut_295": "ServerError.text of a refusal is never seen: connect() "
        "raises a new ConnectError from the message, the reconnect loop only logs it",
    _TR + "x_parse_url__mutmut_13": _CASE + " (the scheme is lower-cased next)",
    _TR + "x_parse_url__mutmut_41": "an empty path gives '' either way",
    _TR + "x_handshake__mutmut_300": "an INFO before the PONG is ignored either way: the next "
        "branch ignores every other line",
    _TR + "x_handshake__mutmut_301": "an INFO before the PONG is ignored either way: the next "
        "branch ignores every other line",
    _TR + "x_handshake__mutmut_31": "setsockopt(TCP_NODELAY, 2): any non-zero value turns it on",
    _EN + "close__mutmut_1": "_Engine.close is an abstract stub: Connection.close overrides it",
    _EN + "_on_replies__mutmut_12": _CASE,
    _EN + "_on_replies__mutmut_17": _STRICT,
    _EN + "_on_replies__mutmut_20": _STRICT,
    _EN + "_on_replies__mutmut_21": _STRICT,
    _EN + "_read__mutmut_2": _READ_MORE,
    _EN + "_read__mutmut_16": _READ_MORE,
    _EN + "_read__mutmut_17": _READ_MORE,
    _EN + "_read__mutmut_18": _READ_MORE,
    _EN + "_read__mutmut_19": _READ_MORE,
    _EN + "_send_direct__mutmut_1": _DIRECT,
    _EN + "_send_direct__mutmut_6": _DIRECT + "; with status != 'connected' the direct socket "
        "is None already",
    _EN + "_send_direct__mutmut_7": _DIRECT,
    _EN + "_queue__mutmut_2": _DIRECT,
    _EN + "_queue__mutmut_47": _DIRECT,
    _EN + "_queue__mutmut_48": _DIRECT,
    _EN + "_queue__mutmut_49": _DIRECT,
    _EN + "_queue__mutmut_3": _WAIT_LOOP,
    _EN + "_queue__mutmut_5": _WAIT_LOOP,
    _EN + "_queue__mutmut_6": _WAIT_LOOP,
    _EN + "_queue__mutmut_7": _WAIT_LOOP,
    _EN + "_queue__mutmut_32": _REASON_SET,
    _EN + "_queue__mutmut_33": _REASON_SET,
    _EN + "_check_open__mutmut_6": _REASON_SET,
    _EN + "_check_open__mutmut_7": _REASON_SET,
    _EN + "_cleanup_fds__mutmut_2": "-1 only tells close() the pipe is closed already; the "
        "cleanup runs once and nothing reads the fds after it",
    _EN + "_cleanup_fds__mutmut_3": "-1 only tells close() the pipe is closed already; the "
        "cleanup runs once and nothing reads the fds after it",
    _EN + "_send_direct__mutmut_8": _DIRECT,
    _EN + "_send_direct__mutmut_18": "a fully sent frame reported as half-sent: the caller only "
        "wakes the I/O thread, which finds nothing to send",
    _EN + "_send_direct__mutmut_25": "3 is handled like 2 by the one caller (not 1, so not "
        "queued again; it wakes the I/O thread)",
    _EN + "_write__mutmut_1": "join None is falsy like False",
    _EN + "_write__mutmut_2": "joined again from the same frames: the same bytes",
    _EN + "_write__mutmut_24": "the cap per send() only splits a batch; the socket takes what "
        "it can either way",
    _EN + "_write__mutmut_25": "the cap per send() only splits a batch; the socket takes what "
        "it can either way",
    _EN + "_write__mutmut_33": _BATCH_ONLY,
    _EN + "_write__mutmut_34": _BATCH_ONLY,
    _EN + "_adopt__mutmut_4": _DIRECT,
    _EN + "_adopt__mutmut_5": _DIRECT,
    _EN + "_adopt__mutmut_7": _DIRECT,
    _EN + "_adopt__mutmut_11": "_lame None is falsy like False",
    _EN + "_cleanup_fds__mutmut_4": "-1 only tells close() the pipe is closed already; the "
        "cleanup runs once and nothing reads the fds after it",
    _EN + "_wake__mutmut_1": _WAKE,
    _EN + "_wake__mutmut_3": _WAKE + " (a forced wake skipped only while the I/O thread is "
        "busy: it checks _stop before it sleeps)",
    _EN + "_wake__mutmut_4": _WAKE,
    _EN + "_wake__mutmut_5": _WAKE,
    _EN + "_wake__mutmut_10": "the wake-up byte's value is never looked at: the I/O thread only "
        "drains the pipe",
    _EN + "_wake__mutmut_11": "the wake-up byte's value is never looked at: the I/O thread only "
        "drains the pipe",
    _RE + "_resume__mutmut_33": _INHERIT,
    _RE + "_resume__mutmut_37": _INHERIT,
    _RE + "_on_disconnect__mutmut_28": _BATCH_ONLY,
    _RE + "_on_disconnect__mutmut_29": _BATCH_ONLY,
    _RE + "_on_disconnect__mutmut_30": _BATCH_ONLY + " (a slice [None:] is [0:])",
    _RE + "_on_disconnect__mutmut_37": "_adopt sets the count to 0 again before the next PING",
    _RE + "_on_disconnect__mutmut_38": "_adopt sets the count to 0 again before the next PING",
    _RE + "_reconnect_loop__mutmut_14": _ONE_POOL + " (the server just lost is always in "
        "the pool)",
    _RE + "_reconnect_loop__mutmut_16": _ONE_POOL,
    _RE + "_reconnect_loop__mutmut_27": "_run's loop ends on _stop anyway, whatever the round "
        "returns",
    _EN + "_io_loop__mutmut_12": _SELECTOR,
    _EN + "_io_loop__mutmut_13": _SELECTOR,
    _EN + "_io_loop__mutmut_17": _RECHECK,
    _EN + "_io_loop__mutmut_18": _RECHECK,
    _EN + "_io_loop__mutmut_19": _RECHECK,
    _EN + "_io_loop__mutmut_21": "_wake_pending None is falsy like False",
    _EN + "_io_loop__mutmut_34": "EVENT_READ | 1 is EVENT_READ (1)",
    _EN + "_io_loop__mutmut_35": _SELECTOR,
    _EN + "_io_loop__mutmut_57": "the read size only: the pipe is drained either way",
    _EN + "_io_loop__mutmut_58": "_read on a write-only event returns at once (nothing to read)",
    _EN + "_io_loop__mutmut_64": _LAME_TEXT,
    _EN + "_io_loop__mutmut_65": _LAME_TEXT,
    _EN + "_io_loop__mutmut_66": _LAME_TEXT,
    _EN + "__init____mutmut_25": "_wake_pending None is falsy like False",
    _EN + "__init____mutmut_26": "the I/O loop clears the wake flag before its first sleep "
        "and looks at the queue after",
    _EN + "__init____mutmut_36": "a blocking wake-up pipe never blocks: the flag lets one byte "
        "in per sleep of the I/O thread, which drains it",
    _EN + "__init____mutmut_41": _BATCH_ONLY,
    _EN + "__init____mutmut_42": _BATCH_ONLY,
    _EN + "__init____mutmut_46": _SET_BEFORE_READ,
    _EN + "__init____mutmut_47": _SET_BEFORE_READ,
    _EN + "__init____mutmut_49": _SET_BEFORE_READ,
    _EN + "__init____mutmut_50": _SET_BEFORE_READ,
    _EN + "__init____mutmut_51": _SET_BEFORE_READ,
    _EN + "__init____mutmut_53": _SET_BEFORE_READ,
    _EN + "__init____mutmut_54": _SET_BEFORE_READ,
    _EN + "__init____mutmut_55": _SET_BEFORE_READ,
    _EN + "__init____mutmut_56": _FALSY,
    _EN + "__init____mutmut_58": _SET_BEFORE_READ,
    _EN + "__init____mutmut_59": _SET_BEFORE_READ,
    _EN + "__init____mutmut_104": _SET_BEFORE_READ,
    _EN + "__init____mutmut_106": "_closed_fds_deferred None is falsy like False",
    _EN + "__init____mutmut_107": "the I/O thread then closes the wake-up pipe itself when close() "
        "stops it (after close() wrote to it); close() sees -1 and skips its own cleanup",
    _RE + "_run__mutmut_2": "lame None is falsy like False",
    _RE + "_run__mutmut_4": _CLOSED_UNUSED,
    _RE + "_run__mutmut_5": _CLOSED_UNUSED,
    _RE + "_run__mutmut_6": _CLOSED_UNUSED,
    _RE + "_run__mutmut_24": "_lame None is falsy like False",
    _RE + "_reconnect_loop__mutmut_101": "_run's loop ends on _stop anyway, whatever the round "
        "returns",
    _RE + "_reconnect_loop__mutmut_60": "_run's loop ends on _stop anyway, whatever the round "
        "returns",
    _RE + "_move_off_lame_duck__mutmut_47": _NO_PONG_IN_REST,
    _RE + "_move_off_lame_duck__mutmut_48": _NO_PONG_IN_REST,
    _RE + "_move_off_lame_duck__mutmut_49": _NO_PONG_IN_REST,
    _RE + "_move_off_lame_duck__mutmut_52": _NO_PONG_IN_REST,
    _RE + "_move_off_lame_duck__mutmut_53": _NO_PONG_IN_REST,
    _RE + "_move_off_lame_duck__mutmut_101": _BATCH_ONLY,
    _RE + "_move_off_lame_duck__mutmut_102": _BATCH_ONLY,
    _RE + "_move_off_lame_duck__mutmut_177": _FALSY,
    _RE + "_resume__mutmut_26": _FALSY,
    _RE + "_resume__mutmut_19": "_on_disconnect always appends an open gap before a resume: "
        "the list is not empty and its last gap is open",
    _RE + "_on_disconnect__mutmut_5": "'' is never used as a socket: _send_direct also needs "
        "status 'connected', which only _resume restores, with a real socket",
    _FEED + "129": _PERF + " (probes more often)",
    _FEED + "130": _PERF + " (never probes: no cached path)",
    _FEED + "131": _PERF + " (countdown goes negative: never "
        "probes again)",
    **_EQ_RUNS,
}


#: Surviving mutants that are not equivalent, with why no test kills them (still scored as
#: survivors: printed beside them in the report).
_RACE = "needs a race the tests cannot arrange on demand"
_PARTIAL = ("a direct send the socket takes only in part, or not at all: needs the kernel's "
            "buffer full just when nothing is queued; not reproducible on demand")
_TEN_S = ("only seen after the fixed 10 s backpressure timeout (no public argument shortens it): "
          "too slow for the fast tests")
_DRAIN_HALF = ("the fallback when sending the drain to the lame duck fails, for a batch the lame "
               "duck had taken in part: needs a half-sent batch at that moment")
_SMALL_SEND = ("a timeout for sendall() of a few hundred bytes of SUB/UNSUB frames, which the "
               "kernel takes at once")
_HALF_SENT = ("which frame of a half-sent batch was the last one fully written when the "
              "connection dropped: not observable deterministically from the server side")
_FLUSH_LOST = ("killable, not pinned here: a flush() in flight at a disconnect must not report "
               "success (the reconnect tests do not flush across a drop)")
_CLOSED_TEXT = ("killable, not pinned here: the reason in ConnectionClosedError after "
                "reconnect=False (test_engine_peers_exact.py pins it, outside this module's list)")
_WS_CLOSE = ("killable, not pinned: the text of a WebSocket close frame sent in answer to "
             "CONNECT (no peer here closes at that moment)")
_RECHECK_RACE = ("the second look at the queue closes a race with a publish queued between the "
                  "first look and clearing the wake flag: " + _RACE)
_PENDING = ("TLS/WebSocket bytes already decrypted or decoded (pending) then wait for the next "
            "wake-up (at most 1 s): no test measures that delay")
_INTERNAL = ("the report of an unexpected exception in the I/O loop (a bug): nothing in the "
             "tests raises one")
SURVIVORS: dict[str, str] = {
    _TR + "x__recv_line__mutmut_21": "remaining is a difference of two monotonic readings: "
        "exactly 0.0 does not happen in practice",
    _EN + "_forget__mutmut_3": "a second _forget of one subscription: " + _RACE + " (unsubscribe "
        "during the delivery of its last message)",
    _EN + "_forget__mutmut_6": "a second _forget of one subscription: " + _RACE + " (unsubscribe "
        "during the delivery of its last message)",
    _EN + "_on_replies__mutmut_26": "killable, not pinned: a late reply and a live one in the "
        "same read",
    _EN + "_deliver_groups__mutmut_23": "the store reads the clock itself, microseconds later: "
        "below what a test tells apart reliably",
    _EN + "_deliver_groups__mutmut_2": "the store reads the clock itself, microseconds later: "
        "below what a test tells apart reliably",
    _EN + "_send_direct__mutmut_2": "a direct send while a batch is half-sent (order broken): "
        + _RACE,
    _EN + "_send_direct__mutmut_12": _PARTIAL,
    _EN + "_send_direct__mutmut_13": _PARTIAL,
    _EN + "_send_direct__mutmut_14": "a direct send that fails with OSError (the connection "
        "breaking at that instant): " + _RACE,
    _EN + "_send_direct__mutmut_15": "killable, not pinned: out_bytes after a request sent from "
        "the caller's thread",
    _EN + "_send_direct__mutmut_16": "killable, not pinned: out_bytes after a request sent from "
        "the caller's thread",
    _EN + "_send_direct__mutmut_19": _PARTIAL,
    _EN + "_send_direct__mutmut_20": _PARTIAL,
    _EN + "_send_direct__mutmut_21": _PARTIAL,
    _EN + "_send_direct__mutmut_22": _PARTIAL,
    _EN + "_send_direct__mutmut_23": _PARTIAL,
    _EN + "_send_direct__mutmut_24": _PARTIAL,
    _EN + "_queue__mutmut_1": "killable, not pinned: SUB/UNSUB frames must not count in "
        "out_msgs",
    _EN + "_queue__mutmut_10": _TEN_S,
    _EN + "_queue__mutmut_13": _TEN_S,
    _EN + "_queue__mutmut_20": _TEN_S,
    _EN + "_queue__mutmut_21": _TEN_S,
    _EN + "_queue__mutmut_22": _TEN_S,
    _EN + "_queue__mutmut_23": _TEN_S,
    _EN + "_queue__mutmut_24": _TEN_S,
    _EN + "_queue__mutmut_25": _TEN_S,
    _EN + "_queue__mutmut_26": _TEN_S,
    _EN + "_queue__mutmut_15": "queued bytes exactly equal to pending_size while a publisher "
        "waits: " + _RACE,
    _EN + "_queue__mutmut_28": "_queue's own closed check runs only when close() lands while a "
        "publisher waits for room, where that publish may go through anyway",
    _EN + "_queue__mutmut_29": "_queue's own closed check runs only when close() lands while a "
        "publisher waits for room, where that publish may go through anyway",
    _EN + "_queue__mutmut_31": "_queue's own closed check runs only when close() lands while a "
        "publisher waits for room (reason 'close() was called', the same text)",
    _EN + "_queue__mutmut_53": "only after a half-sent direct frame (no wake; the I/O thread "
        "sends the rest within its 1 s select cap): " + _PARTIAL.split(":")[1].strip(),
    _EN + "_queue__mutmut_55": "only after a half-sent direct frame (no wake; the I/O thread "
        "sends the rest within its 1 s select cap): " + _PARTIAL.split(":")[1].strip(),
    _RE + "_move_off_lame_duck__mutmut_32": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_37": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_38": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_113": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_118": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_119": _SMALL_SEND,
    _RE + "_move_off_lame_duck__mutmut_96": "a caller's direct send in the milliseconds of a "
        "move would hit '': " + _RACE,
    _RE + "_move_off_lame_duck__mutmut_133": "_out[:1] instead of _out[:0]: differs only if "
        "a publish was queued during the failing drain itself",
    _EN + "_write__mutmut_28": "killable, not pinned: out_bytes after a batch the socket takes "
        "in several sends",
    _RE + "_move_off_lame_duck__mutmut_143": "killable, not pinned: the drain's recv timeout "
        "floor (1.01 s instead of the time left); the test's bound (1.5 s) is too loose",
    _RE + "_move_off_lame_duck__mutmut_159": "killable, not pinned: which flush() waiters the "
        "lame duck still owed a PONG (the test only checks that the flush succeeds)",
    _RE + "_move_off_lame_duck__mutmut_163": "killable, not pinned: a flush() whose PONG the "
        "lame duck never sent must wait for the new server (the test only checks it succeeds)",
    _RE + "_move_off_lame_duck__mutmut_164": "killable, not pinned: a flush() whose PONG the "
        "lame duck never sent must wait for the new server (the test only checks it succeeds)",
    _RE + "_move_off_lame_duck__mutmut_174": "killable, not pinned: needs a lame-duck move after "
        "an earlier reconnect (reconnects 1 instead of 2)",
    _EN + "_adopt__mutmut_2": "a blocking socket under the select loop still works (reads and "
        "writes follow readiness); it only stalls the I/O thread in a send the peer is slow to "
        "take",
    _EN + "_shutdown_socket__mutmut_1": "'' is only reachable by a direct send between "
        "close()'s socket shutdown and its status change: " + _RACE,
    _TR + "x_handshake__mutmut_63": "tls_required in the CONNECT of a wss:// connection: a real "
        "server ignores it, and no fake here speaks TLS and WebSocket both",
    _TR + "x_handshake__mutmut_64": "tls_required in the CONNECT of a wss:// connection: a real "
        "server ignores it, and no fake here speaks TLS and WebSocket both",
    _RE + "_on_disconnect__mutmut_17": _HALF_SENT,
    _RE + "_on_disconnect__mutmut_20": _HALF_SENT,
    _RE + "_on_disconnect__mutmut_21": _HALF_SENT,
    _RE + "_on_disconnect__mutmut_31": "a move would skip the first byte of the drain: needs a "
        "reconnect with nothing to re-subscribe, then a lame-duck move, before any batch",
    _RE + "_on_disconnect__mutmut_39": _FLUSH_LOST,
    _RE + "_on_disconnect__mutmut_40": _FLUSH_LOST,
    _RE + "_on_disconnect__mutmut_41": _FLUSH_LOST,
    _RE + "_reconnect_loop__mutmut_2": _CLOSED_TEXT,
    _RE + "_reconnect_loop__mutmut_3": _CLOSED_TEXT,
    _RE + "_reconnect_loop__mutmut_4": _CLOSED_TEXT,
    _RE + "_reconnect_loop__mutmut_5": _CLOSED_TEXT,
    _RE + "_reconnect_loop__mutmut_26": "the rotated pool ends with one server twice: only "
        "the order of retries after every other server failed differs",
    _TR + "x_handshake__mutmut_255": _WS_CLOSE,
    _TR + "x_handshake__mutmut_257": _WS_CLOSE,
    _TR + "x_handshake__mutmut_259": _WS_CLOSE,
    _EN + "_adopt__mutmut_12": "killable, not pinned: a fresh connection acting as if on a "
        "lame duck (the test looks before the I/O thread's first turn)",
    _RE + "_move_off_lame_duck__mutmut_134": "None is replaced by the I/O thread's write right "
        "after the move; only a publish in that instant would trip on it",
    _TR + "x_parse_url__mutmut_35": "killable, not pinned: the path of a wss:// URL (the "
        "tests give paths to ws:// URLs only)",
    _TR + "x_parse_url__mutmut_36": "killable, not pinned: the path of a wss:// URL (the "
        "tests give paths to ws:// URLs only)",
    _EN + "_io_loop__mutmut_23": _RECHECK_RACE,
    _EN + "_io_loop__mutmut_24": _RECHECK_RACE,
    _EN + "_io_loop__mutmut_25": _RECHECK_RACE,
    _EN + "_io_loop__mutmut_33": "EVENT_WRITE always: a busy loop (CPU), the same bytes",
    _EN + "_io_loop__mutmut_43": _PENDING,
    _EN + "_io_loop__mutmut_44": _PENDING,
    _EN + "_io_loop__mutmut_45": _PENDING,
    _EN + "_io_loop__mutmut_60": _PENDING,
    _EN + "_io_loop__mutmut_61": _PENDING,
    _EN + "_io_loop__mutmut_51": "the 1 s cap on select is a safety net (every event the loop "
        "must act on wakes it); 2 s only shows if one did not",
    _EN + "_io_loop__mutmut_68": "now == next_ping exactly (two monotonic readings): does not "
        "happen in practice",
    _EN + "__init____mutmut_43": "read only by a lame-duck move before any batch was written "
        "([None:] slices like [0:]; a failing drain would then compare None)",
    _EN + "__init____mutmut_44": "killable: a move before any batch would skip the drain's first "
        "byte; pinned by test_reconnect_exact.py, outside _engine's list",
    _RE + "_reconnect_loop__mutmut_70": "killable, not pinned: after a protocol error on resume "
        "the round goes on to the next server (the test's pool has one)",
    _RE + "_reconnect_loop__mutmut_92": "the doubling stops after 11 rounds instead of 10: no "
        "test waits that long",
    _RE + "_run__mutmut_18": _INTERNAL,
    _RE + "_run__mutmut_19": _INTERNAL,
    _RE + "_run__mutmut_20": _INTERNAL,
    _RE + "_run__mutmut_21": "return skips the I/O thread's own socket and deferred pipe cleanup: "
        "only differs when close() gives up joining it during a handshake",
    _RE + "_run__mutmut_25": "killable, not pinned: with nowhere to go the client would try to "
        "move again and again (the test checks the report, not that it comes once)",
    _RE + "_run__mutmut_26": "killable, not pinned: the gap's reason when the lame-duck move "
        "itself fails (e.g. garbage from the new server right behind its PONG)",
    _RE + "_run__mutmut_30": "return skips the I/O thread's own socket and deferred pipe cleanup "
        "after giving up: close() does both anyway",
    _RE + "_run__mutmut_31": "closing the wake-up pipe when the thread ends without close() "
        "(gave up): only differs if the connection is used after it gave up, which raises "
        "ConnectionClosedError first",
}
for _n in range(34, 40):
    SURVIVORS[_EN + f"_on_info__mutmut_{_n}"] = ("killable: lame-duck INFO handling is pinned "
                                                 "by test_reconnect_exact.py, left out of "
                                                 "_engine's list so that the run fits the hour")
for _n in (125, 126, 129):
    SURVIVORS[_RE + f"_move_off_lame_duck__mutmut_{_n}"] = _DRAIN_HALF


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def timeouts(modules: list[str]) -> tuple[float, float]:
    """mutmut's (timeout_multiplier, timeout_constant) for a run of `modules`.

    A mutant whose tests run longer than (their time in the clean run + constant) * multiplier
    of wall-clock time is stopped and counted as "timeout": detected, like a killed one (a
    mutant that makes the tests hang is a bug the tests notice). The client modules' tests
    mostly wait on sockets (little CPU), so a hung mutant there is cut short sooner.
    """
    if any(LAYER[m] == "client" for m in modules):
        return 3.0, 10.0
    return 5.0, 20.0


def prepare(work: Path, modules: list[str]) -> None:
    """A scratch copy of the project with a [tool.mutmut] section for these modules."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "browser")
    shutil.copytree(ROOT / "natsbook", work / "natsbook", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    shutil.copy2(ROOT / "README.md", work / "README.md")
    tests = sorted({t for m in modules for t in MODULES[m]})
    multiplier, constant = timeouts(modules)
    config = (ROOT / "pyproject.toml").read_text()
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["natsbook/"]\n'
        f"only_mutate = {_toml_list([f'natsbook/{LAYER[m]}/{m}.py' for m in modules])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not slow and not browser", '
        '"-W", "ignore::pytest.PytestUnraisableExceptionWarning"]\n'
        f"timeout_multiplier = {multiplier}\n"
        f"timeout_constant = {constant}\n"
    )
    (work / "pyproject.toml").write_text(config)


def results(work: Path) -> dict[str, dict[str, str]]:
    """{module: {mutant name: status}} from mutmut's own bookkeeping."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted((work / "mutants" / "natsbook").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        module = meta.name.removesuffix(".py.meta")
        codes = data.get("exit_code_by_key", {})
        out[module] = {name: _status(code) for name, code in codes.items()}
    return out


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return str(status_by_exit_code[code])


#: Statuses that count as detected. "timeout": the mutant made the tests run past mutmut's
#: wall-clock limit (see timeouts()), i.e. hang or crawl: the tests noticed it, as a failure.
_KILLED = ("killed", "timeout", "caught by type check", "segfault")


def report(work: Path, modules: list[str]) -> int:
    """Print the table (timeouts counted apart from killed, both detected) and every survivor.

    score = (killed + timeout) / (mutants - equivalent). A mutant mutmut ran no test for
    ("no tests") counts as a survivor, never as equivalent, unless EQUIVALENT lists it.
    """
    by_module = results(work)
    total_detected = total_scored = 0
    survivors: list[str] = []
    print(f"{'module':<12} {'mutants':>7} {'equiv':>6} {'killed':>7} {'timeout':>7} "
          f"{'survived':>8} {'score':>7}")
    stale: list[str] = []
    for module in modules:
        statuses = by_module.get(module, {})
        # An interrupted run leaves mutants "not checked": reported, not scored.
        unchecked = [n for n, s in statuses.items() if s == "not checked"]
        statuses = {n: s for n, s in statuses.items() if s != "not checked"}
        if unchecked:
            print(f"{module:<12} ({len(unchecked)} mutants not checked: the run was cut short)")
        dead = {n for n, s in statuses.items() if s in _KILLED}
        timeouts = sum(1 for n in dead if statuses[n] == "timeout")
        # A mutant listed as equivalent but killed is not equivalent: say so, score it.
        stale += sorted(f"{n}: {statuses[n]}" for n in statuses if n in EQUIVALENT and n in dead)
        equivalent = [n for n in statuses if n in EQUIVALENT and n not in dead]
        alive = [n for n in statuses if n not in dead and n not in EQUIVALENT]
        scored = len(statuses) - len(equivalent)
        score = 100.0 * len(dead) / scored if scored else 100.0
        total_detected += len(dead)
        total_scored += scored
        survivors += [f"{n}: {statuses[n]}" for n in alive]
        print(f"{module:<12} {len(statuses):>7} {len(equivalent):>6} {len(dead) - timeouts:>7} "
              f"{timeouts:>7} {len(alive):>8} {score:>6.1f}%")
    score = 100.0 * total_detected / total_scored if total_scored else 100.0
    print(f"{'total':<12} {total_scored:>7} {'':>6} {total_detected:>7} {'':>7} "
          f"{len(survivors):>8} {score:>6.1f}%  (detected = killed + timeout, of "
          "non-equivalent mutants)")
    if survivors:
        print("\nsurviving mutants (see one with: cd <work dir> && mutmut show NAME):")
        for line in survivors:
            reason = SURVIVORS.get(line.split(":")[0])
            print("  ", line + (f" - {reason}" if reason else ""))
    if stale:
        print("\nlisted in EQUIVALENT but detected (scored as detected; a killed one is not "
              "equivalent, remove it; a timeout may be the machine's load: re-run it alone):")
        for n in stale:
            print("  ", n)
    eq = [n for n in EQUIVALENT if n.split(".")[-2] in modules]
    if eq:
        print("\nequivalent (not scored):")
        for n in eq:
            print(f"   {n}: {EQUIVALENT[n]}")
    return 0 if score >= 90.0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", default=[],
                    help=f"modules to mutate (default: all of {', '.join(MODULES)})")
    ap.add_argument("--max-children", type=int, default=2,
                    help="mutants tested in parallel (default 2)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "mutation",
                    help="scratch directory (default build/mutation)")
    ap.add_argument("--report-only", action="store_true",
                    help="print the results of the last run in --work")
    args = ap.parse_args()
    modules = args.modules or list(MODULES)
    unknown = set(modules) - set(MODULES)
    if unknown:
        ap.error(f"unknown module(s) {sorted(unknown)}; choose from {list(MODULES)}")
    if not args.report_only:
        prepare(args.work, modules)
        start = time.monotonic()
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("NATS_URL", None)
        log = args.work / "mutmut-run.log"
        print(f"mutating {', '.join(modules)}; progress in {log}", flush=True)
        with log.open("w") as out:
            proc = subprocess.run([sys.executable, "-m", "mutmut", "run",
                                   "--max-children", str(args.max_children)],
                                  cwd=args.work, env=env, check=False, stdout=out,
                                  stderr=subprocess.STDOUT)
        print(f"mutmut exited {proc.returncode} after {time.monotonic() - start:.0f}s\n")
    return report(args.work, modules)


if __name__ == "__main__":
    raise SystemExit(main())
