"""bertviz's head and model views as one self-contained, offline HTML page for an iframe.

bertviz's HTML pulls require.js, d3 and jQuery from a CDN. Here the CDN config is cut
out and d3 v5.7 (shipped by the `mpld3` wheel) and jQuery (the `xstatic-jquery` wheel)
are inlined, with a few lines of our own standing in for require.js. A Content-Security-
Policy in the page forbids any network fetch as a second line of defence.

Tokens are user text and land in a JSON literal inside <script>: they are encoded with
`<`, `>`, `&` as \\u003c-style escapes so no token can close the script element.
bertviz then puts them into the DOM with d3's `.text()` (checked in head_view.js and
model_view.js), so they show literally and need no HTML escaping on top.
"""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..analysis.attention import drop_special_sinks
from ..record import ATTN, KEY, QUERY, Analysis, Family

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)

# Resolves require.js-style calls from window globals: d3 and jQuery, loaded just before,
# see no AMD `define` and so register themselves as window.d3 / window.jQuery.
_AMD_SHIM = """
(function () {
  function lookup(name) {
    var modules = {d3: window.d3, jquery: window.jQuery};
    if (!modules[name]) { throw new Error("ctxlens shim: unknown module " + name); }
    return modules[name];
  }
  function requirejs(deps, callback) {
    var resolved = deps.map(lookup);
    if (callback) { callback.apply(window, resolved); }
  }
  requirejs.config = function () {};
  window.requirejs = requirejs;
  window.require = requirejs;
})();
"""

_REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.DOTALL)
_CDN_SCRIPT_TAG = re.compile(r"<script[^>]*\bsrc=[^>]*>\s*</script>", re.IGNORECASE)
_HACK_COMMENT = re.compile(r"; // HACK: [^\n]*")  # bertviz repeats the whole JSON in it
# Head view: one SVG line per head and token pair, all heads at once.
# Model view: every layer × head thumbnail draws its T² lines.
MAX_SVG_LINES = 400_000
# Attention weights (layers x heads x T²) above which the neuron view carries only the picked
# head: at 512 tokens MiniLM's every head is 19 M numbers, over 100 MB of page.
NEURON_FULL_CELLS = 1_000_000


def _package_dir(name: str) -> Path:
    # find_spec locates the files without importing the package (mpld3 imports matplotlib).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed (pip install {name.split('.')[0]})")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=None)
def vendored_scripts() -> str:
    """d3 v5, jQuery and the AMD shim as inline <script> elements."""
    d3 = (_package_dir("mpld3") / "js" / "d3.v5.min.js").read_text(encoding="utf-8")
    jquery = (_package_dir("xstatic.pkg.jquery") / "data" / "jquery.min.js").read_text(encoding="utf-8")
    return "".join(_inline_script(src) for src in (d3, jquery, _AMD_SHIM))


def _inline_script(source: str) -> str:
    if "</script" in source.lower():  # would end the element early; never true for these files
        raise RuntimeError("refusing to inline a script containing '</script'")
    return f"<script>\n{source}\n</script>\n"


def json_for_script(value) -> str:
    """JSON that is safe inside <script>: no `<`, `>`, `&` (so no `</script>`, no `<!--`)."""
    text = json.dumps(value, ensure_ascii=True)  # also escapes U+2028/U+2029
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class LayerView:
    """An activation of the record indexed [layer, head] like an [L, H, ...] array, fetched
    from the device one (layer, head) at a time: a view that draws a few heads moves only those."""

    def __init__(self, record: Analysis, name: str):
        self.record, self.name = record, name
        first = record.acts.tensor(name, 0)
        self.shape = (record.acts.count(name), *first.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        layer, head = index if isinstance(index, tuple) else (index, slice(None))
        return self.record.acts.numpy(self.name, layer, head)


class _BertvizLayers:
    """bertviz's attention input, a sequence of [1, H, T, T] tensors, that fetches from the
    device only what the view draws: the `layers` it includes and, for the model view, the
    `heads` it includes (the others are zeros bertviz drops). A layer not drawn is an empty
    stand-in: bertviz reads only its head count. Rounded float64, so the JSON holds "0.123".
    drop_sinks: special-token key columns zeroed and rows re-normalised, as in the heatmaps."""

    def __init__(self, record: Analysis, decimals: int, layers=None, heads=None, drop_sinks=False):
        self.record, self.decimals, self.drop_sinks = record, decimals, drop_sinks
        self.layers = None if layers is None else set(layers)
        self.heads = None if heads is None else sorted(heads)

    def __len__(self) -> int:
        return self.record.n_layers

    def __getitem__(self, layer: int):
        import torch  # only this view needs torch here

        n_heads, n = self.record.n_heads, self.record.n_tokens
        if self.layers is not None and layer not in self.layers:
            return torch.empty(1, n_heads, 0, 0, dtype=torch.float64)
        if self.heads is None:
            att = self.record.attention(layer)
        else:
            att = np.zeros((n_heads, n, n))
            att[self.heads] = self.record.attention(layer, self.heads)
        if self.drop_sinks:
            att = drop_special_sinks(att, self.record.special_mask)
        return torch.from_numpy(np.round(att.astype(np.float64), self.decimals)[None])


def _attention_tensors(record: Analysis, decimals: int, layers=None, heads=None, drop_sinks=False):
    if not record.has_attention:
        raise ValueError(f"{record.family.label} models have no attention to show")
    return _BertvizLayers(record, decimals, layers, heads, drop_sinks)


def sentence_b_start(record: Analysis) -> int | None:
    """Index of the first token of the second text of a pair, else None."""
    if not record.text_pair:
        return None
    second = np.flatnonzero(np.asarray(record.segment_ids) == 1)
    return int(second[0]) if second.size else None


def _bertviz_body(view_fn, record: Analysis, decimals: int, drawn: dict, **kwargs) -> str:
    """Run bertviz with placeholder tokens, then put the real ones back, JSON-escaped.

    bertviz splices json.dumps(params) into its JS unescaped; placeholders keep user text
    out of that step entirely. drawn: the layers (and heads) the view includes, so only they
    are fetched from the device, and drop_sinks.
    """
    marker = f"ctxlens-{uuid.uuid4().hex}-"
    placeholders = [f"{marker}{i}" for i in range(record.n_tokens)]
    result = view_fn(
        _attention_tensors(record, decimals, **drawn),
        placeholders,
        sentence_b_start=sentence_b_start(record),
        prettify_tokens=False,  # our display tokens are already readable
        html_action="return",
        **kwargs,
    )
    body = _CDN_SCRIPT_TAG.sub("", result.data)
    body = _REQUIRE_CONFIG.sub("", body)
    body = _HACK_COMMENT.sub(";", body)
    if re.search(r"https?://cdn|<script[^>]*\bsrc=", body):  # a bertviz upgrade changed its template
        raise RuntimeError("bertviz output still loads a script from the network")
    real = [json_for_script(t) for t in record.tokens]
    return re.sub(rf'"{re.escape(marker)}(\d+)"', lambda m: real[int(m.group(1))], body)


def _page(body: str, background: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        f"<style>body{{margin:0;padding:6px;background:{background};}}</style>\n"
        f"{vendored_scripts()}</head><body>\n{body}\n</body></html>\n"
    )


def head_view_html(
    record: Analysis,
    *,
    layer: int | None = None,
    heads: list[int] | None = None,
    layers: list[int] | None = None,
    drop_sinks: bool = False,
    decimals: int = 3,
) -> str:
    """bertviz head view of the record's attention as a full offline HTML page.

    layer: layer selected at first; heads: heads selected at first (all by default);
    layers: the layers included at all (fewer layers, smaller page). With one layer, bertviz's
    layer menu is hidden: the page's own Layer control picks it, and two menus fall out of step.
    drop_sinks: attention without special-token sinks, re-normalised.
    """
    from bertviz import head_view

    body = _bertviz_body(head_view, record, decimals, {"layers": layers, "drop_sinks": drop_sinks},
                         layer=layer, heads=heads, include_layers=layers)
    if layers is not None and len(layers) == 1:
        body = _hide_once(body, _HEAD_LAYER_MENU, '<select id="layer" hidden></select>')
    return _page(body, "white")


_HEAD_LAYER_MENU = 'Layer: <select id="layer"></select>'  # bertviz's head view template


def _hide_once(body: str, markup: str, replacement: str) -> str:
    if body.count(markup) != 1:  # a bertviz upgrade changed its template
        raise RuntimeError(f"bertviz's page no longer holds {markup!r} once")
    return body.replace(markup, replacement)


def model_view_html(
    record: Analysis,
    *,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    display_mode: str = "light",
    drop_sinks: bool = False,
    opened: tuple[int, int] | None = None,
    decimals: int = 3,
) -> str:
    """bertviz model view (every layer × head thumbnail) as a full offline HTML page.

    opened=(layer, head): that thumbnail's enlarged view is open at first, when the view
    includes it. drop_sinks: attention without special-token sinks, re-normalised.
    """
    from bertviz import model_view

    body = _bertviz_body(
        model_view, record, decimals, {"layers": layers, "heads": heads, "drop_sinks": drop_sinks},
        include_layers=layers, include_heads=heads, display_mode=display_mode,
    )
    shown_layers = list(range(record.n_layers)) if layers is None else list(layers)
    shown_heads = list(range(record.n_heads)) if heads is None else list(heads)
    if opened is not None and opened[0] in shown_layers and opened[1] in shown_heads:
        body += _open_thumbnail(shown_layers.index(opened[0]), shown_heads.index(opened[1]))
    return _page(body + _FIT_WIDTH, "white" if display_mode == "light" else "black")


# bertviz draws 12 heads' thumbnails 970 px wide, wider than a page's column: the last heads
# were cut. Once drawn, the page shrinks to the frame's width (never grows), again whenever the
# frame is resized (a frame in a hidden tab has no width until the tab opens).
_FIT_WIDTH = _inline_script(
    "(function () { function fit() { var body = document.body; body.style.zoom = 1;\n"
    "    var wide = body.scrollWidth, room = window.innerWidth;\n"
    "    if (room > 0 && wide > room) { body.style.zoom = room / wide; } }\n"
    "  fit(); window.addEventListener('resize', fit); })();"
)


def _open_thumbnail(row: int, column: int) -> str:
    """A click on a model-view thumbnail (row, column of the drawn grid) opens its detail;
    this clicks it once bertviz has drawn (its script ran just before, synchronously)."""
    return _inline_script(
        f'(function () {{ var frame = document.getElementById("attn_background_{row}_{column}");\n'
        "  if (frame) { frame.parentNode.lastElementChild.dispatchEvent(new MouseEvent('click')); }\n})();"
    )


def svg_line_count(record: Analysis, view: str, layers: list[int] | None = None,
                   heads: list[int] | None = None) -> int:
    """How many SVG lines bertviz will draw; above MAX_SVG_LINES the browser crawls."""
    if not record.has_attention:
        return 0
    n_layers, n_heads = record.n_layers, record.n_heads
    pairs = record.n_tokens ** 2
    if view == "head":  # one layer at a time, every head's lines (unselected ones hidden)
        return n_heads * pairs
    if view == "model":
        return len(layers or range(n_layers)) * len(heads or range(n_heads)) * pairs
    raise ValueError(f"unknown view {view!r}: use 'head' or 'model'")


def suggested_height(record: Analysis, view: str, layers: list[int] | None = None) -> int:
    """Iframe height in pixels that fits the view (from bertviz's layout constants)."""
    n = record.n_tokens
    if view == "head":  # TEXT_TOP 30 + BOXHEIGHT 22.5 per token, plus the selectors
        return int(30 + 22.5 * n + 60)
    if view == "model":
        total_heads = max(1, record.n_heads)
        n_layers = len(layers) if layers is not None else record.n_layers
        thumbnail = n * 7 * (12 / total_heads) + 10
        detail = n * 18 + 55
        return int(max(n_layers * thumbnail + 38, detail) + 60)
    raise ValueError(f"unknown view {view!r}: use 'head' or 'model'")


def neuron_view_unavailable_reason(record: Analysis) -> str:
    """Why the neuron view cannot be shown for this record's model (see analysis/neurons.py)."""
    if record.family is Family.ELMO or not record.has_attention:
        return "ELMo is a biLSTM: it has no attention heads, so there is no neuron view."
    return (
        "The neuron view is not available for this model: its backend does not hand out the "
        "queries and keys its attention scores (see backends/capture.py)."
    )


# --- neuron view ---------------------------------------------------------------------------

_NEURON_FILTERS = """
  <span class="dropdown-label">Attention: </span><select id="filter">
    <option value="all">All</option>
    <option value="aa">Sentence A -> Sentence A</option>
    <option value="ab">Sentence A -> Sentence B</option>
    <option value="ba">Sentence B -> Sentence A</option>
    <option value="bb">Sentence B -> Sentence B</option>
  </select>"""


def _neuron_attention(record: Analysis, queries, keys, decimals: int, only: tuple[int, int] | None = None) -> dict:
    """bertviz's neuron_view.get_attention structure, from our record and q/k arrays.

    Per filter: left_text / right_text (query and key tokens) and, per layer, [H, Tq, Tk]
    attention, [H, Tq, d] queries and [H, Tk, d] keys. Unlike bertviz, "ab" and "ba" get
    their queries and keys too, so picking them in the menu does not break the page.
    only=(layer, head): every other head's entries are empty lists (the page keeps its layer
    and head menus fixed), except layer 0 head 0's vectors, where bertviz reads their size.
    """
    tokens = list(record.tokens)
    n = record.n_tokens
    spans = {"all": (slice(0, n), slice(0, n))}
    b = sentence_b_start(record)
    if b is not None:
        a_, b_ = slice(0, b), slice(b, n)
        spans.update(aa=(a_, a_), ab=(a_, b_), ba=(b_, a_), bb=(b_, b_))
    L, H = record.n_layers, record.n_heads
    attention = LayerView(record, ATTN)

    def nested(array, index, keep: set[tuple[int, int]]) -> list:
        return [[np.round(np.asarray(array[layer, head], dtype=np.float64)[index], decimals).tolist()
                 if (layer, head) in keep else [] for head in range(H)] for layer in range(L)]

    every = {(layer, head) for layer in range(L) for head in range(H)}
    picked = every if only is None else {only}
    vectors = every if only is None else {only, (0, 0)}
    return {
        name: {
            "left_text": tokens[rows], "right_text": tokens[cols],
            "attn": nested(attention, (rows, cols), picked),
            "queries": nested(queries, rows, vectors), "keys": nested(keys, cols, vectors),
        }
        for name, (rows, cols) in spans.items()
    }


def neuron_view_fits(record: Analysis) -> bool:
    """Whether the neuron view can carry every head (else only the picked one)."""
    return record.has_attention and record.n_layers * record.n_heads * record.n_tokens**2 <= NEURON_FULL_CELLS


def neuron_view_html(record: Analysis, queries=None, keys=None, layer: int | None = None,
                     head: int | None = None, decimals: int = 3, every_head: bool = True) -> str:
    """bertviz neuron view (one head's query and key vectors) as a full offline HTML page.

    queries, keys: [L, H, T, d] for the same text as the record; by default the record's own
    "q" / "k", fetched one head at a time. bertviz's own neuron_view.show needs its bundled model classes,
    so here its page is assembled from our arrays and its neuron_view.js. A long input (see
    neuron_view_fits), or every_head=False (a page whose own controls pick the head), carries
    only the given layer and head, with the menus fixed on them.
    """
    if not record.has_attention:
        raise ValueError(f"{record.family.label} models have no attention to show")
    queries = LayerView(record, QUERY) if queries is None else queries
    keys = LayerView(record, KEY) if keys is None else keys
    expected = (record.n_layers, record.n_heads, record.n_tokens)
    if np.shape(queries)[:3] != expected or np.shape(keys)[:3] != expected:
        raise ValueError(f"queries/keys {np.shape(queries)}, {np.shape(keys)} do not match attention {expected}")
    js = (_package_dir("bertviz") / "neuron_view.js").read_text(encoding="utf-8")
    js = _REQUIRE_CONFIG.sub("", js)
    if re.search(r"https?://", js.split("*/", 1)[-1]):  # past the header comment
        raise RuntimeError("bertviz's neuron_view.js still names a network address")
    vis_id = f"bertviz-{uuid.uuid4().hex}"
    layer, head = layer or 0, head or 0
    only = None if every_head and neuron_view_fits(record) else (layer, head)
    menu = "" if only is None else " disabled"
    params = {
        "attention": _neuron_attention(record, queries, keys, decimals, only),
        "default_filter": "all",
        "root_div_id": vis_id,
        "bidirectional": record.family is not Family.CAUSAL_LM,
        "display_mode": "light",
        "layer": layer,
        "head": head,
    }
    body = (
        f'<div id="{vis_id}" style="padding:8px;font-family:\'Helvetica Neue\', Helvetica, Arial, sans-serif;">\n'
        '<span style="user-select:none">\n'
        f'  <span class="dropdown-label">Layer: </span><select id="layer"{menu}></select>\n'
        f'  <span class="dropdown-label">Head: </span> <select id="att_head"{menu}></select>\n'
        f"{_NEURON_FILTERS if sentence_b_start(record) is not None else ''}\n"
        "</span>\n<div id='vis'></div>\n</div>\n"
        + _inline_script(f"window.bertviz_params = {json_for_script(params)};")
        + _inline_script(js)
    )
    return _page(body, "white")


def neuron_view_height(record: Analysis) -> int:
    """Iframe height for the neuron view: HEADING_HEIGHT 42 + BOXHEIGHT 26 per token + padding."""
    return int(42 + 26 * record.n_tokens + 100 + 50)
