"""SubjectTree: an expandable subject tree (anywidget), plus the pure code that lays it out.

The kernel sends only the visible rows (roots and the children of open nodes); the browser
sends back clicks: ``selected`` (a synced trait) and toggles (custom messages).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anywidget
import traitlets as T

__all__ = ["Node", "SubjectTree", "build_tree", "visible_rows"]

_ESM = r"""
// Rows are kept by path and updated in place, so a row under the pointer survives the
// 10 Hz refreshes; clicks act on mousedown (a refresh between press and release cannot
// swallow them).
function render({ model, el }) {
  el.classList.add("nb-tree");
  const byPath = new Map();
  const empty = document.createElement("div");
  empty.className = "nb-tree-empty";
  const part = (row, cls) => row.querySelector("." + cls);
  const make = (path) => {
    const row = document.createElement("div");
    row.dataset.path = path;
    for (const cls of ["nb-tree-toggle", "nb-tree-name", "nb-tree-meta", "nb-tree-last"]) {
      const s = document.createElement("span");
      s.className = cls;
      row.append(s);
    }
    part(row, "nb-tree-toggle").addEventListener("mousedown", (e) => {
      e.stopPropagation();
      e.preventDefault();
      if (row.dataset.kids === "1") model.send({ toggle: path });
    });
    row.addEventListener("mousedown", (e) => {
      e.preventDefault();
      model.set("selected", path);
      model.save_changes();
    });
    return row;
  };
  const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
  const draw = () => {
    const rows = model.get("rows"), sel = model.get("selected");
    const wanted = [];
    const seen = new Set();
    for (const r of rows) {
      let row = byPath.get(r.path);
      if (!row) { row = make(r.path); byPath.set(r.path, row); }
      seen.add(r.path);
      const cls = "nb-tree-row" + (r.path === sel ? " nb-tree-selected" : "");
      if (row.className !== cls) row.className = cls;
      row.dataset.kids = r.kids ? "1" : "0";
      row.style.paddingLeft = (4 + 16 * r.depth) + "px";
      setText(part(row, "nb-tree-toggle"), r.kids ? (r.open ? "\u25BE" : "\u25B8") : "\u00B7");
      setText(part(row, "nb-tree-name"), r.name);
      const unit = r.count === 1 ? "msg" : "msgs";
      setText(part(row, "nb-tree-meta"), ` (${r.count} ${unit}, ${r.rate})`);
      setText(part(row, "nb-tree-last"), r.last ? " = " + r.last : "");
      const tip = r.path + (r.last ? " = " + r.last : "");
      if (row.title !== tip) row.title = tip;
      wanted.push(row);
    }
    for (const path of [...byPath.keys()]) if (!seen.has(path)) byPath.delete(path);
    if (wanted.length === 0) {
      empty.textContent = model.get("placeholder");
      wanted.push(empty);
    }
    const current = Array.from(el.children);
    const same = current.length === wanted.length && current.every((c, i) => c === wanted[i]);
    if (!same) el.replaceChildren(...wanted);
  };
  model.on("change:rows", draw);
  model.on("change:selected", draw);
  draw();
}
export default { render };
"""

_CSS = """
.nb-tree { font-family: var(--jp-code-font-family, monospace); font-size: 12px;
  max-height: 420px; overflow-y: auto; overflow-x: hidden;
  border: 1px solid var(--jp-border-color2, #ddd); padding: 2px 0;
  background: var(--jp-layout-color0, white); box-sizing: border-box; }
.nb-tree-row { cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  padding: 1px 6px 1px 4px; }
.nb-tree-row:hover { background: var(--jp-layout-color2, #eee); }
.nb-tree-selected { background: #d7e8fa !important; }
.nb-tree-toggle { display: inline-block; width: 14px; color: #555; }
.nb-tree-name { font-weight: 600; }
.nb-tree-meta { color: #777; }
.nb-tree-last { color: #1a5e9a; }
.nb-tree-empty { color: #888; font-style: italic; padding: 4px 8px; }
"""


@dataclass(slots=True)
class Node:
    """One node of the subject tree: the messages on its own subject and below it."""

    name: str
    path: str
    count: int = 0
    is_subject: bool = False
    children: dict[str, Node] = field(default_factory=dict)


def build_tree(counts: Mapping[str, int]) -> dict[str, Node]:
    """Roots of the tree of `counts` (subject -> messages), split on '.'."""
    roots: dict[str, Node] = {}
    for subject, n in counts.items():
        level = roots
        path = ""
        node: Node | None = None
        for tok in subject.split("."):
            path = f"{path}.{tok}" if path else tok
            node = level.get(tok)
            if node is None:
                node = level[tok] = Node(tok, path)
            node.count += n
            level = node.children
        if node is not None:
            node.is_subject = True
    return roots


def visible_rows(roots: Mapping[str, Node], open_paths: set[str],
                 rate: Callable[[Node], str], last: Callable[[Node], str],
                 limit: int = 500) -> list[dict[str, Any]]:
    """The rows to draw: roots, then children of open nodes, depth first, sorted by name."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[Node, int]] = [(n, 0) for n in sorted(roots.values(),
                                                            key=lambda n: n.name, reverse=True)]
    while stack and len(out) < limit:
        node, depth = stack.pop()
        is_open = node.path in open_paths
        out.append({"path": node.path, "name": node.name, "depth": depth,
                    "kids": bool(node.children), "open": is_open and bool(node.children),
                    "count": node.count, "rate": rate(node),
                    "last": last(node) if node.is_subject else ""})
        if is_open:
            stack.extend((c, depth + 1) for c in sorted(node.children.values(),
                                                         key=lambda n: n.name, reverse=True))
    return out


class SubjectTree(anywidget.AnyWidget):
    """The tree view. ``selected`` is the clicked node's path; toggles open/close nodes."""

    _esm = _ESM
    _css = _CSS
    rows = T.List(T.Dict(), help="visible rows, set by the explorer").tag(sync=True)
    selected = T.Unicode("", help="path of the selected node").tag(sync=True)
    placeholder = T.Unicode("no messages yet").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._on_toggle: list[Callable[[str], None]] = []
        self.on_msg(self._on_custom_msg)

    @property
    def open_paths(self) -> set[str]:
        """A copy of the set of open node paths."""
        with self._lock:
            return set(self._open)

    def toggle(self, path: str, open: bool | None = None) -> None:
        """Open or close a node (what clicking its arrow does)."""
        with self._lock:
            want = (path not in self._open) if open is None else open
            if want:
                self._open.add(path)
            else:
                self._open.discard(path)
        for cb in list(self._on_toggle):
            cb(path)

    def open_auto(self, paths: set[str]) -> None:
        """Open nodes without notifying (used for auto-expansion of new nodes)."""
        with self._lock:
            self._open |= paths

    def on_toggle(self, callback: Callable[[str], None]) -> None:
        self._on_toggle.append(callback)

    def _on_custom_msg(self, _widget: object, content: Any, _buffers: object) -> None:
        if isinstance(content, dict) and isinstance(content.get("toggle"), str):
            self.toggle(content["toggle"])
