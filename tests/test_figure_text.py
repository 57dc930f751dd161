"""Every text size the book's figures set is at least 9 pt as shown (issue 14), checked in the code.

How a figure's text ends up on screen: the style (``ibtools/ibtools.mplstyle``) sets the sizes in
points of the figure; a figure is drawn at most ``TEXT_WIDTH_IN`` wide and saved as a PNG that
records its dpi; the page shows it at ``px_per_inch`` CSS px per figure inch (its natural size, or
squeezed to the text column). A size of ``s`` figure points shows at ``s * px_per_inch / 96`` pt
(96 CSS px per inch at 100 % zoom). ``tests/test_book_html.py`` fails every figure shown at fewer
than ``MIN_PX_PER_INCH = 12 * 72 / MIN_FONT_PT`` px per inch, the smallest scale the book lets
through; at that scale a size of ``s`` shows at ``9 * s / MIN_FONT_PT`` pt. So text is >= 9 pt on
screen exactly when every size is >= ``MIN_FONT_PT`` figure points: :data:`FLOOR_PT` below. (A 7-in
figure saved at 110 dpi is 770 px, shown 740 px wide: 106 px per inch, so 8-pt text shows at 8.8 pt.)

This file checks the sizes where they are set, without building the book: the style file (every
font size rcParam after ``use_style()``, relative sizes such as ``"small"`` resolved against its
``font.size``), and every explicit size in the chapters' code cells (``book/*.ipynb``,
``book/drafts/*.ipynb``), in ``ibtools`` and in ``scripts``: ``fontsize=``, ``labelsize=``,
``title_fontsize=``, ``size=`` in text/label/legend/tick calls, ``prop``/``fontdict`` dicts,
``set_fontsize``/``set_size``, rcParams assignments, ``rc(...)``, ``rc_context``, and defaults of
function parameters named like a font size. A size the scanner cannot evaluate (an expression of
unknown names) is a failure too: write it as a number, a named size, or from ``MIN_FONT_PT``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.font_manager import font_scalings  # noqa: E402

from ibtools import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Smallest size (figure points) of any text: >= 9 pt on screen at the smallest scale the book's
#: rendered-page test allows (see the module docstring).
MIN_PX_PER_INCH = 12 * 72 / plotting.MIN_FONT_PT  # tests/test_book_html.py's rule
FLOOR_PT = 9 / (MIN_PX_PER_INCH / 96)  # = MIN_FONT_PT
#: Calls whose ``size=`` keyword is a font size (elsewhere ``size=`` is an array shape).
TEXT_CALLS = {"text", "annotate", "figtext", "title", "set_title", "suptitle", "xlabel", "ylabel", "set_xlabel",
              "set_ylabel", "supxlabel", "supylabel", "legend", "set_label", "tick_params", "set_xticklabels",
              "set_yticklabels", "set_xticks", "set_yticks", "table", "clabel", "bar_label", "FontProperties",
              "set_ticklabels", "colorbar"}
#: Keywords that are a font size in any call.
SIZE_KEYWORDS = {"fontsize", "labelsize", "title_fontsize", "titlesize", "label_fontsize"}
#: rcParams keys that are font sizes.
FONT_RC = re.compile(r"(^font\.size$|fontsize$|labelsize$|titlesize$)")
#: Names a size expression may use.
KNOWN = {"MIN_FONT_PT": plotting.MIN_FONT_PT}


def _style_rc() -> dict:
    with plt.rc_context():
        plotting.use_style()
        return dict(matplotlib.rcParams)


STYLE_RC = _style_rc()
BASE_PT = float(STYLE_RC["font.size"])


def _points(value) -> float:
    """A font size in points: numbers as they are, named sizes against the style's ``font.size``."""
    if isinstance(value, str):
        if value in font_scalings:
            return BASE_PT * font_scalings[value]
        return float(value)
    return float(value)


# -- the style file ------------------------------------------------------------------------------

def test_style_sets_no_text_below_the_floor():
    assert FLOOR_PT == plotting.MIN_FONT_PT >= 9
    sizes = {k: v for k, v in STYLE_RC.items() if FONT_RC.search(k) and v is not None}
    assert {"font.size", "axes.labelsize", "xtick.labelsize", "legend.fontsize"} <= set(sizes)
    small = {k: f"{v!r} = {_points(v):.2f} pt" for k, v in sizes.items() if _points(v) < FLOOR_PT}
    assert not small, f"ibtools.mplstyle (with matplotlib's defaults) sets text below {FLOOR_PT} pt: {small}"


def test_drawn_text_of_the_style_is_at_least_the_floor():
    """What the style draws by default (title, labels, ticks, legend, colour bar) measured on a figure."""
    with plt.rc_context():
        plotting.use_style()
        fig, ax = plt.subplots()
        ax.plot([1, 2], [1, 2], label="a")
        ax.set(title="t", xlabel="x", ylabel="y")
        ax.legend(title="legend")
        plotting.epoch_colorbar(ax, 100)
        fig.suptitle("s")
        fig.canvas.draw()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
        sizes = {t.get_text(): t.get_fontsize() for t in texts}
        plt.close(fig)
    assert len(sizes) >= 8
    small = {k: v for k, v in sizes.items() if v < FLOOR_PT}
    assert not small, f"text drawn below {FLOOR_PT} pt with the book's style: {small}"


# -- explicit sizes in code ----------------------------------------------------------------------

def _cells(path: Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # IPython lines (magics, shell escapes) are not Python; blank them, keeping line numbers
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        out.append((f"{path.relative_to(ROOT)} cell {i}", source))
    return out


def _sources() -> dict[str, list[tuple[str, str]]]:
    """Each file (a chapter or a module) with its pieces of code: (where, source)."""
    out = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book" / "drafts").glob("*.ipynb")):
        out[str(path.relative_to(ROOT))] = _cells(path)
    for path in sorted((ROOT / "ibtools").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py")):
        where = str(path.relative_to(ROOT))
        out[where] = [(where, path.read_text(encoding="utf-8"))]
    return out


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


class _Sizes(ast.NodeVisitor):
    """Collects (line, what, size expression) of every explicit font size in a module."""

    def __init__(self):
        self.found: list[tuple[int, str, ast.expr]] = []
        self.params: dict[str, list[ast.expr]] = {}  # parameters named like a font size: their defaults

    def _add(self, node, what, value):
        self.found.append((node.lineno, what, value))

    def _dict(self, node, what, d: ast.Dict):
        for k, v in zip(d.keys, d.values):
            if isinstance(k, ast.Constant) and isinstance(k.value, str) and (k.value in ("size", "fontsize")
                                                                            or FONT_RC.search(k.value)):
                self._add(node, f"{what}[{k.value!r}]", v)

    def visit_Call(self, node: ast.Call):
        name = _call_name(node)
        for kw in node.keywords:
            if kw.arg in SIZE_KEYWORDS or (kw.arg == "size" and name in TEXT_CALLS):
                self._add(node, f"{name}({kw.arg}=)", kw.value)
            elif kw.arg in ("prop", "fontdict", "fontproperties", "title_fontproperties") and isinstance(kw.value, ast.Dict):
                self._add_dict_kw(node, name, kw)
            elif name == "dict" and kw.arg in ("size", "fontsize"):
                pass  # a dict(...) passed as prop/fontdict is caught there
        if name in ("set_fontsize", "set_size") and node.args:
            self._add(node, f"{name}()", node.args[0])
        if name in ("update", "rc_context") and node.args and isinstance(node.args[0], ast.Dict):
            self._dict(node, f"{name}()", node.args[0])
        if name == "rc" and node.args and isinstance(node.args[0], ast.Constant):
            group = node.args[0].value
            for kw in node.keywords:
                if kw.arg and FONT_RC.search(f"{group}.{kw.arg}"):
                    self._add(node, f"rc({group!r}, {kw.arg}=)", kw.value)
        self.generic_visit(node)

    def _add_dict_kw(self, node, name, kw):
        self._dict(node, f"{name}({kw.arg}=)", kw.value)

    def visit_Assign(self, node: ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                key = target.slice.value
                if isinstance(key, str) and FONT_RC.search(key):
                    self._add(node, f"rcParams[{key!r}]", node.value)
        self.generic_visit(node)

    def _visit_function(self, node):
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for arg, default in pairs:
            if arg.arg in SIZE_KEYWORDS and not (isinstance(default, ast.Constant) and default.value is None):
                self._add(node, f"default of {node.name}({arg.arg}=)", default)
                self.params.setdefault(arg.arg, []).append(default)
        self.generic_visit(node)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function


def _evaluate(expr: ast.expr, params: dict[str, list[ast.expr]]):
    """The size (points) an expression stands for, None for matplotlib's default (the style's
    size), or raise ValueError if it cannot be evaluated. A parameter named like a font size
    (``fontsize + 1`` in a helper) stands for its smallest default: callers that pass another
    size are checked at their call."""
    if isinstance(expr, ast.Constant) and expr.value is None:
        return None
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    env = dict(KNOWN)
    for name in names & set(params):
        defaults = [_evaluate(d, {}) for d in params[name]]
        env[name] = min(d for d in defaults if d is not None)
    if names - set(env):
        raise ValueError(f"uses {sorted(names - set(env))}")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.operator, ast.unaryop)
    if not all(isinstance(n, allowed) for n in ast.walk(ast.Expression(expr))):
        raise ValueError("is not a number, a named size or arithmetic on MIN_FONT_PT")
    value = eval(compile(ast.Expression(expr), "<size>", "eval"), {"__builtins__": {}}, env)  # noqa: S307
    return _points(value)


def small_sizes(where: str, source: str) -> list[str]:
    """Every explicit font size in ``source`` below :data:`FLOOR_PT` (or not checkable), as messages."""
    tree = ast.parse(source)
    sizes = _Sizes()
    sizes.visit(tree)
    problems = []
    for line, what, expr in sizes.found:
        text = ast.unparse(expr)
        try:
            points = _evaluate(expr, sizes.params)
        except ValueError as exc:
            problems.append(f"{where} line {line}: {what} {text} cannot be checked ({exc})")
            continue
        if points is not None and points < FLOOR_PT:
            problems.append(f"{where} line {line}: {what} {text} = {points:.2f} pt < {FLOOR_PT} pt")
    return problems


SOURCES = _sources()


def test_scanner_finds_small_sizes_in_every_form():
    """The scanner sees each way of setting a size (so the check below can fail)."""
    bad = """
import matplotlib.pyplot as plt
ax.legend(ncol=2, title="layer", fontsize=8)
ax.text(0, 0, "a", size="small")
ax.tick_params(labelsize=MIN_FONT_PT - 2)
ax.set_title("t", fontdict={"fontsize": 7})
ax.legend(prop={"size": "x-small"})
plt.rcParams["legend.fontsize"] = 8
plt.rcParams.update({"xtick.labelsize": 6})
plt.rc("font", size=8)
label.set_fontsize(5)
def draw(ax, fontsize=10):
    ax.text(0, 0, "b", fontsize=fontsize - 2)
ax.text(0, 0, "c", fontsize=scale * 9)
"""
    problems = small_sizes("example", bad)
    assert len(problems) == 11, "\n".join(problems)
    assert "cannot be checked" in problems[-1]
    ok = """
ax.legend(fontsize=9, title_fontsize="medium")
ax.set_title("t", fontsize=MIN_FONT_PT + 1)
x = rng.normal(size=(3, 4))
plt.rcParams["figure.figsize"] = (7, 3)
def draw(ax, fontsize=9):
    ax.text(0, 0, "b", fontsize=fontsize)
"""
    assert small_sizes("example", ok) == []
    assert len(SOURCES) > 20 and "book/03_one_network.ipynb" in SOURCES and "ibtools/plotting.py" in SOURCES


@pytest.mark.parametrize("file", sorted(SOURCES))
def test_no_explicit_text_size_below_the_floor(file):
    problems = [p for where, source in SOURCES[file] for p in small_sizes(where, source)]
    assert not problems, "text that would show below 9 pt:\n" + "\n".join(problems)
