"""Results at a glance: the claims ledger (chapter 6's `ledger.csv`) condensed for the landing page and for the
top of each chapter. The landing page opens with each paper's bottom line (at most three sentences, counted
from the ledger); then, for every claim: what the paper says with its number, the scope of our measurement,
what we measured, the verdict linked to its ledger row (borderline ones flagged), and why when it is not
reproduced. Sanity checks of a method's own aim are listed apart and not counted with the claims.

`compnb html` writes one Markdown file per page into `<book>/_generated/` (`write_all`) before Jupyter Book
runs; the landing page and the chapters include them, so the glance always shows the ledger of the profile
being rendered.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from compnb.models import DEFAULT_BACKBONE
from compnb.paths import results_dir

LEDGER_PAGE = "06-claims-ledger.html"
PAPER_VALUE = "paper's value"
PAPERS = {1: "Competency bias / entropy maximization", 2: "Gradient-based adversarial training for NLI",
          3: "Integrated-gradients variance regularization"}
MARK = {"reproduced": "✓ reproduced", "contradicted": "✗ contradicted", "inconclusive": "? inconclusive",
        "not testable here": "– not testable here", "not run": "· not run"}
SANITY = "sanity check"


def read_ledger(profile: str) -> pd.DataFrame | None:
    """Chapter 6's ledger at `profile`, or None before chapter 6 has run."""
    path = results_dir(profile, "06-claims-ledger") / "ledger.csv"
    return pd.read_csv(path, keep_default_na=False) if path.is_file() else None


def _verdict_cell(row: pd.Series, ledger_href: str) -> str:
    flag = ' <span class="compnb-flag" title="borderline">⚑ borderline</span>' if row["borderline"] else ""
    return f'<a href="{ledger_href}#claim-{html.escape(row["id"])}">{MARK.get(row["verdict"], row["verdict"])}</a>{flag}'


def claims_table(rows: pd.DataFrame, ledger_href: str) -> str:
    """An HTML table of `rows`: the claim with the paper's number, the verdict (linked), ours with the scope
    it rests on, and why when a claim is not reproduced."""
    body = []
    for _, r in rows.iterrows():
        why = html.escape(r["why"]) if r["verdict"] != "reproduced" else ""
        body.append(f"<tr><td>{html.escape(r['claim'])}<br><small>{html.escape(r[PAPER_VALUE])}</small></td>"
                    f"<td>{_verdict_cell(r, ledger_href)}</td><td>{html.escape(r['ours'])}"
                    f"<br><small>{html.escape(r['scope'])}</small></td><td>{why}</td></tr>")
    return ('<div class="compnb-glance" data-key-columns="2"><table><thead><tr><th>the paper claims</th><th>verdict</th>'
            '<th>we found (scope)</th><th>why (when not reproduced)</th></tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def _claims(rows: pd.DataFrame) -> pd.DataFrame:
    """The papers' claims and the book's tests beyond them (shown, never counted), without sanity checks."""
    return rows[rows["group"] != SANITY]


def _papers_own(rows: pd.DataFrame) -> pd.DataFrame:
    """Only the claims the papers make: what the counts and bottom lines count."""
    return rows[rows["group"] == "claim"]


def counts_line(rows: pd.DataFrame) -> str:
    """'3 reproduced, 2 contradicted, 9 inconclusive, 5 not testable here (2 borderline)': the papers' own
    claims only (sanity checks and the book's tests beyond the papers left out)."""
    rows = _papers_own(rows)
    counts = rows["verdict"].value_counts()
    parts = [f"{counts[v]} {v}" for v in MARK if v in counts]
    borderline = int((rows["borderline"] != "").sum())
    return ", ".join(parts) + (f" ({borderline} borderline)" if borderline else "")


def _lower_first(text: str) -> str:
    """`text` with its first letter lowered when it opens an ordinary word ('The gradient' → 'the gradient'),
    kept in an acronym or name written in capitals ('SST-2', 'IG-variance')."""
    return text[0].lower() + text[1:] if len(text) > 1 and text[0].isupper() and text[1].islower() else text


def _listed(rows: pd.DataFrame, most: int = 3) -> str:
    """The claims of `rows` in one sentence, joined by semicolons (at most `most`, then how many more)."""
    names = [r["claim"].rstrip(".") for _, r in rows.iterrows()]
    names = names[:1] + [_lower_first(n) for n in names[1:]]
    shown = "; ".join(names[:most])
    return shown + (f"; and {len(names) - most} more" if len(names) > most else "")


def bottom_line(ledger: pd.DataFrame, paper: int) -> str:
    """Paper `paper`'s bottom line, at most three sentences counted from the ledger: the verdicts of its
    claims, what reproduced, what was contradicted."""
    rows = _papers_own(ledger[ledger["paper"].astype(int) == paper])
    counts = rows["verdict"].value_counts()
    tested = int(counts.get("reproduced", 0) + counts.get("contradicted", 0) + counts.get("inconclusive", 0))
    first = (f"Of {len(rows)} claims, {tested} could be tested here: {int(counts.get('reproduced', 0))} reproduced, "
             f"{int(counts.get('contradicted', 0))} contradicted, {int(counts.get('inconclusive', 0))} inconclusive "
             f"with this design" + (f" ({int(counts.get('not run', 0))} not run at this profile)"
                                    if counts.get("not run", 0) else "") + ".")
    sentences = [first]
    for verdict, word in (("reproduced", "Reproduced"), ("contradicted", "Contradicted")):
        chosen = rows[rows["verdict"] == verdict]
        if len(chosen):
            sentences.append(f"{word}: {_listed(chosen)}.")
    return " ".join(sentences)


def bottom_lines(ledger: pd.DataFrame) -> str:
    """The landing page's first screen: one short paragraph per paper."""
    items = "".join(f"<li><strong>Paper {p}, {html.escape(t[0].lower() + t[1:])}.</strong> "
                    f"{html.escape(bottom_line(ledger, p))}"
                    "</li>" for p, t in PAPERS.items())
    return "```{raw} html\n" + f'<ul class="compnb-bottom-line">{items}</ul>' + "\n```\n"


def landing(ledger: pd.DataFrame, context: dict) -> str:
    """The landing page's block: per paper, the counts and the claims that could be tested; then why the rest
    cannot be compared here (`context`: backbone, its parameters, the offline SNLI share)."""
    href = f"chapters/{LEDGER_PAGE}"
    parts = []
    for paper, title in PAPERS.items():
        rows = ledger[ledger["paper"].astype(int) == paper]
        tested = _claims(rows)[_claims(rows)["verdict"].isin(["reproduced", "contradicted", "inconclusive"])]
        parts.append(f"<h3>Paper {paper}: {html.escape(title)}</h3><p>{counts_line(rows)}; "
                     f'every claim in <a href="{href}">the claims ledger</a>.</p>' + claims_table(tested, href))
    size = f" ({context['parameters'] / 1e6:.0f} M parameters)" if context["parameters"] else ""
    snli = (f"; offline, SNLI is a sample of {context['snli_rows']:,} training pairs, about "
            f"{context['snli_share']:.0%} of the corpus" if context["snli_rows"] else "")
    why = (f"<p>Scope: the book's backbone is {html.escape(context['backbone'])}"
           f"{size}, where the papers fine-tuned OPT-1.3B and Llama-2-7B (paper 1) and ELECTRA-small (papers 2 "
           f"and 3){snli}. Absolute numbers of other backbones and corpora are marked <em>not testable here</em>; "
           "effects (differences against the paper's own kind of baseline) are judged as each paper states "
           "them, and <em>inconclusive</em> means this design (its seeds, its evaluation pairs) cannot tell: "
           "the ledger gives the effect it could have detected and the seeds that would be needed.</p>")
    return "```{raw} html\n" + why + "".join(parts) + "\n```\n"


def chapter(ledger: pd.DataFrame, name: str) -> str:
    """The block at the top of chapter `name`: its claims, then its sanity checks apart; or nothing."""
    rows = ledger[ledger["chapter"] == name]
    if rows.empty:
        return ""
    claims, sanity = _claims(rows), rows[rows["group"] == SANITY]
    families = sorted({f.split(", Holm")[0] for f in rows.get("family", pd.Series(dtype=str)) if f})
    family = (f" Families: {'; '.join(html.escape(f) for f in families)}, each corrected by Holm's method in the "
              "ledger." if families else "")
    block = (f'<p class="compnb-glance-title"><strong>Results at a glance</strong>: {counts_line(rows)}.{family}</p>'
             + (claims_table(claims, LEDGER_PAGE) if len(claims) else ""))
    if len(sanity):
        block += ('<p class="compnb-glance-title">Sanity checks of the method\'s own aim (not counted with the '
                  "claims):</p>" + claims_table(sanity, LEDGER_PAGE))
    return "```{raw} html\n" + block + "\n```\n"


def _parameters(name: str) -> int | None:
    """Parameters of a locally available backbone, summed from its safetensors headers (no torch); None for a
    name only the hub has."""
    from compnb.models import resolve_backbone

    folder = Path(resolve_backbone(name))
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    total = 0
    for file in files:
        with file.open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


def context(profile: str) -> dict:
    """The facts the landing page's caveat states: the backbone of chapter 2's runs and its size, and the
    offline SNLI training rows (chapter 1's data record) as a share of the corpus."""
    from compnb.chapters.paper_scale import TRAIN_EXAMPLES

    configs = sorted(results_dir(profile, "runs").glob("*/config.json"))
    model = json.loads(configs[0].read_text())["model"] if configs else DEFAULT_BACKBONE
    record = results_dir(profile, "01-artifact-mining") / "run.json"
    sources = json.loads(record.read_text()).get("data_sources") or [] if record.is_file() else []
    snli = next((s["rows"] for s in sources if s["dataset"] == "snli" and s["split"] == "train"), None)
    return {"backbone": model.split("/")[-1], "parameters": _parameters(model), "snli_rows": snli,
            "snli_share": None if snli is None else snli / TRAIN_EXAMPLES["snli"]}


def write_all(book: Path, profile: str, chapters: list[str]) -> None:
    """`<book>/_generated/glance-intro.md`, `glance-bottom-line.md` and one `glance-<chapter>.md` per chapter
    (a note or nothing without a ledger); and each chapter's "Try it" box (`try_it.write_all`)."""
    from compnb.chapters import try_it

    try_it.write_all(book, chapters)
    out = book / "_generated"
    out.mkdir(parents=True, exist_ok=True)
    ledger = read_ledger(profile)
    if ledger is None:
        note = "*Results at a glance appear once chapter 6 (the claims ledger) has run at this profile.*\n"
        pages = {"intro": note, "bottom-line": note, **{c: "" for c in chapters}}
    else:
        pages = {"intro": landing(ledger, context(profile)), "bottom-line": bottom_lines(ledger),
                 **{c: chapter(ledger, c) for c in chapters}}
    for name, text in pages.items():
        (out / f"glance-{name}.md").write_text(text or "\n")
