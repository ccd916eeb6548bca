"""The λ explorer as a reader uses it, in headless Chromium: moving the slider (from the keyboard) puts the
chart's highlighted points, the numbers and the saliency maps on the committed values of chapter 3's
`explorer.json` for that λ, at desktop and phone width; nothing runs off the page at 390 px, and the page asks
nothing outside the site. Needs the HTML built (`compnb html`)."""

from __future__ import annotations

import json
import math
import re

import pytest
from test_site import HTML, NARROW, WIDE, browser  # noqa: F401 (browser: the shared fixture)

from compnb import explorer
from compnb.chapters import explorer_page
from compnb.paths import project_root

PAGE = HTML / "_generated" / f"{explorer_page.PAGE}.html"
MAP_COLOUR, FULL_SHARE = (178, 24, 43), 0.5  # compnb-explorer.js: a token's background, white at share 0, this at 0.5
PANELS = {"y": ("accuracy", "f1"), "y2": ("adv_accuracy", "adv_f1"), "y3": ("H_topk",)}


def built_profile() -> str:
    """The profile the site was built from: the one its chapter 3 ran with (its parameters cell, in the build)."""
    source = json.loads((HTML / "_sources" / "chapters" / f"{explorer_page.CHAPTER}.ipynb").read_text())
    cell = next(c for c in source["cells"] if "parameters" in c["metadata"].get("tags", []))
    return re.search(r'^profile = "(\w+)"', "".join(cell["source"]), re.M)[1]


def committed() -> dict:
    return json.loads((project_root() / "results" / built_profile() / explorer_page.CHAPTER / explorer.FILE).read_text())


STATE = """() => {
    const gd = document.getElementById('compnb-explorer-chart'), full = gd._fullLayout;
    const current = [...gd.querySelectorAll('g.trace.scatter')].map(g => g.__data__[0].trace)
        .filter(t => t.meta === 'current').map(t => {
            const group = [...gd.querySelectorAll('g.trace.scatter')].find(g => g.__data__[0].trace === t);
            const xa = full.xaxis, ya = full['yaxis' + t.yaxis.slice(1)];
            return {yaxis: t.yaxis, x: t.x, y: t.y,
                    drawn: [...group.querySelectorAll('path.point')].map(p =>
                        p.getAttribute('transform').match(/-?[\\d.e+-]+/g).map(Number)),
                    expected: t.x.map((x, i) => [xa.c2p(x), ya.c2p(t.y[i])])};
        });
    const cell = td => ({value: td.querySelector('.compnb-explorer-value').dataset.value,
                         text: td.querySelector('.compnb-explorer-value').textContent,
                         ci: td.querySelector('.compnb-explorer-ci') ? {...td.querySelector('.compnb-explorer-ci').dataset,
                              text: td.querySelector('.compnb-explorer-ci').textContent} : null});
    const table = document.getElementById('compnb-explorer-numbers');
    const rows = Object.fromEntries([...table.querySelectorAll('tbody tr')].map(tr => [tr.dataset.metric,
        {point: cell(tr.querySelector('td[data-role=point]')), baseline: cell(tr.querySelector('td[data-role=baseline]'))}]));
    const line = e => e && [...e.querySelectorAll('.compnb-explorer-token')].map(t => ({token: t.textContent,
        score: t.dataset.score, background: getComputedStyle(t).backgroundColor, color: getComputedStyle(t).color}));
    const examples = [...document.querySelectorAll('.compnb-explorer-example')].map(e => ({
        head: e.querySelector('.compnb-explorer-example-head').textContent,
        point: line(e.querySelector('.compnb-explorer-map[data-role=point]')),
        baseline: line(e.querySelector('.compnb-explorer-map[data-role=baseline]'))}));
    const missing = [...document.querySelectorAll('.compnb-explorer-nomaps')].map(p => [p.dataset.role, p.textContent]);
    return {current, rows, examples, missing,
            runs: [...table.querySelectorAll('thead th[data-run]')].map(th => th.dataset.run),
            shown: [...document.querySelectorAll('.compnb-explorer-lam-value')].map(o => o.textContent),
            sliders: [...document.querySelectorAll('.compnb-explorer-lam')].map(s => s.value),
            reading: document.getElementById('compnb-explorer-reading').textContent};
}"""

OVERFLOW = """width => [document.documentElement, ...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > width + 1 || e.scrollWidth > width + 1)
    .map(e => `${e.tagName.toLowerCase()}.${e.className.baseVal ?? e.className} (right ${Math.round(
        e.getBoundingClientRect().right)}, scroll width ${e.scrollWidth})`)"""


def _rgb(score: float) -> tuple[int, int, int]:
    """compnb-explorer.js's background of a token with share `score` of S: ∝ the share, full at `FULL_SHARE`
    (Math.round: half up)."""
    share = min(1.0, score / FULL_SHARE)
    return tuple(math.floor(255 + share * (c - 255) + 0.5) for c in MAP_COLOUR)


def _luminance(rgb) -> float:
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _colour(css: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def _check_cell(shown: dict, values: dict, confirmation: dict | None, key: str, where: str) -> None:
    value = values[key]
    assert float(shown["value"]) == value, f"{where}: {key} is {shown['value']}, committed {value}"
    assert abs(float(shown["text"]) - value) <= 5e-4 + 1e-12, f"{where}: {key} shows {shown['text']} for {value}"
    if confirmation is None:
        assert shown["ci"] is None, f"{where}: {key} shows an interval where none was trained"
        return
    c = confirmation[key]
    assert shown["ci"] is not None, f"{where}: {key} shows no interval, though {confirmation['seeds']} were trained"
    assert shown["ci"]["seeds"] == ",".join(map(str, confirmation["seeds"])), f"{where}: {key}'s interval's seeds"
    for k in ("mean", "low", "high"):
        assert (shown["ci"][k] == "null") if c[k] is None else float(shown["ci"][k]) == c[k], \
            f"{where}: the interval's {k} of {key} is {shown['ci'][k]}, committed {c[k]}"
    numbers = [float(v) for v in re.findall(r"\d+\.\d{3}", shown["ci"]["text"])]
    assert numbers and all(abs(a - b) <= 5e-4 + 1e-12 for a, b in
                           zip(numbers, [c[k] for k in ("mean", "low", "high") if c[k] is not None])), \
        f"{where}: {key}'s interval reads {shown['ci']['text']!r}, committed {c}"


def _check_maps(state: dict, dataset: dict, method: str, point: dict, where: str) -> None:
    baseline = dataset["baseline"][method]
    for role, run in (("point", point), ("baseline", baseline)):
        notes = [text for r, text in state["missing"] if r == role]
        if run["maps"] is None:
            assert len(notes) == 1 and run["run"] in notes[0] and "not stored" in notes[0], \
                f"{where}: the map area does not say that {run['run']}'s maps were not stored: {state['missing']}"
            assert all(e[role] is None for e in state["examples"])
            continue
        assert not notes, f"{where}: the map area says {run['run']}'s stored maps are missing"
        assert len(state["examples"]) == len(run["maps"]), f"{where}: {len(state['examples'])} examples shown"
        for i, (shown, stored) in enumerate(zip(state["examples"], run["maps"])):
            assert [t["token"] for t in shown[role]] == stored["tokens"], f"{where}: example {i}'s {role} tokens"
            assert [float(t["score"]) for t in shown[role]] == stored["scores"], f"{where}: example {i}'s {role} scores"
            assert f"p({stored['label']}) = " in shown["head"] and f"{stored['p_true']:.2f}" in shown["head"]
            for t, score in zip(shown[role], stored["scores"]):
                background = _colour(t["background"])
                assert background == _rgb(score), \
                    f"{where}: example {i} token {t['token']!r} (share {score}) is {t['background']}"
                text = _luminance(_colour(t["color"]))
                contrast = (max(text, _luminance(background)) + 0.05) / (min(text, _luminance(background)) + 0.05)
                assert contrast >= 4.5, f"{where}: token {t['token']!r} has contrast {contrast:.2f}"


def _check(state: dict, dataset: dict, config: dict, index: int, where: str) -> None:
    """The page shows `config`'s point `index` and the baseline of its method, as committed."""
    point, baseline = config["points"][index], dataset["baseline"][config["method"]]
    lam = f"{point['lam']:g}"
    assert state["shown"] == [lam] * len(state["shown"]) and state["sliders"] == [str(index)] * len(state["sliders"])
    assert f"λ = {lam}" in state["reading"], f"{where}: the reading is about another λ: {state['reading'][:80]!r}"
    assert state["runs"] == [point["run"], baseline["run"]], f"{where}: the table shows runs {state['runs']}"
    assert sorted(c["yaxis"] for c in state["current"]) == sorted(PANELS), f"{where}: highlighted panels"
    for current in state["current"]:
        expected = [point["values"][key] for key in PANELS[current["yaxis"]]]
        assert current["x"] == [point["lam"]] * len(expected) and current["y"] == expected, \
            f"{where}: the highlighted point of {current['yaxis']} is at {current['x']}, {current['y']}"
        drawn = [d[-2:] for d in current["drawn"]]  # translate(x, y) of each marker
        assert len(drawn) == len(expected) and all(abs(a - b) <= 1 for d, e in zip(drawn, current["expected"])
                                                   for a, b in zip(d, e)), \
            f"{where}: the highlight of {current['yaxis']} is drawn at {drawn}, its values are at {current['expected']}"
    for key in ("accuracy", "f1", "adv_accuracy", "adv_f1", "H_topk"):
        _check_cell(state["rows"][key]["point"], point["values"], point["confirmation"], key, where)
        _check_cell(state["rows"][key]["baseline"], baseline["values"], baseline["confirmation"], key, where)
    _check_maps(state, dataset, config["method"], point, where)


def _move(page, index: int) -> dict:
    """Move the slider to grid position `index` as a reader does from the keyboard; return what the page shows."""
    page.focus("#compnb-explorer-lam")
    page.keyboard.press("Home")
    for _ in range(index):
        page.keyboard.press("ArrowRight")
    return page.evaluate(STATE)


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_the_slider_moves_the_chart_the_numbers_and_the_maps_to_the_committed_values(browser, width):  # noqa: F811
    data = committed()
    site = HTML.resolve().as_uri() + "/"
    outside: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": 900})

    def route(request_route):
        if request_route.request.url.startswith(site):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(site) else None)
    try:
        page.goto(PAGE.as_uri())
        page.wait_for_selector("#compnb-explorer-chart .main-svg", timeout=30000)
        first, last = data["datasets"][0], data["datasets"][-1]
        config = first["configs"][0]
        assert len(config["points"]) >= 2, f"{first['dataset']} {config['method']} · {config['form']}: one λ only"
        page.select_option("#compnb-explorer-dataset", "0")
        page.select_option("#compnb-explorer-method", config["method"])
        page.select_option("#compnb-explorer-form", config["form"])
        states = []
        for index in range(len(config["points"])):
            states.append(_move(page, index))
            _check(states[-1], first, config, index, f"{first['dataset']} {config['method']} {config['form']} "
                                                    f"λ position {index} at {width} px")
        assert states[0]["current"] != states[1]["current"] and states[0]["runs"] != states[1]["runs"]
        if any(p["maps"] for p in config["points"][:2]):
            assert states[0]["examples"] != states[1]["examples"], "the maps did not change with λ"
        other = last["configs"][-1]  # the selectors: another dataset, method and form
        page.select_option("#compnb-explorer-dataset", str(len(data["datasets"]) - 1))
        page.select_option("#compnb-explorer-method", other["method"])
        page.select_option("#compnb-explorer-form", other["form"])
        end = len(other["points"]) - 1
        _check(_move(page, end), last, other, end, f"{last['dataset']} {other['method']} {other['form']} at {width} px")
        if width == NARROW:
            overflowing = page.evaluate(OVERFLOW, NARROW)
            assert not overflowing, f"elements wider than the {NARROW} px page: {overflowing[:5]}"
    finally:
        page.close()
    assert not outside, f"the explorer asked for something outside the site: {outside[:3]}"


def test_the_explorer_is_numbered_under_chapter_3(browser):  # noqa: F811
    page = browser.new_page(viewport={"width": WIDE, "height": 900})
    try:
        page.goto(PAGE.as_uri())
        heading = page.inner_text("main section h1")
        figure = page.inner_text("main figure figcaption .caption-number")
    finally:
        page.close()
    assert heading.startswith("3.") and "λ explorer" in heading, f"the page's title is {heading!r}"
    assert figure.startswith("Fig. 3."), f"the chart's caption is numbered {figure!r}"
